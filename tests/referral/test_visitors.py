"""Bot / preview user agents and visitor keys (pure: no database)."""

import hashlib
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referral.visitors import is_bot, visitor_key

MINI_PROGRAM_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN "
    "miniProgram/wx1234567890abcdef"
)
MINI_PROGRAM_ANDROID = (
    "Mozilla/5.0 (Linux; Android 13; V2227A Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 "
    "MMWEBSDK/20231202 MMWEBID/2247 MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 Weixin "
    "NetType/WIFI Language/zh_CN ABI/arm64 MiniProgramEnv/android"
)

BOTS = {
    "missing": None,
    "empty": "",
    "blank": "   ",
    "wechat preview": "Mozilla/5.0 (compatible; WeChat-Preview/1.0)",
    "wechat spider": "Mozilla/5.0 (Linux; Android 10) AppleWebKit/537.36 MicroMessenger/8.0.40 "
    "Spider",
    "wechat bot": "Mozilla/5.0 MicroMessenger/7.0.20 Bot",
    "wechat crawler": "Mozilla/5.0 (compatible; MicroMessenger Crawler)",
    "weixin spider": "Mozilla/5.0 (compatible; Weixin Spider/1.0)",
    "wecom preview": "Mozilla/5.0 (Windows NT 10.0) wxwork/4.1.10 MicroMessenger/7.0.1 Preview",
    "qq url manager": "QQ-URL-Manager",
    "qq browser spider": "Mozilla/5.0 (Linux; Android 9) MQQBrowser/6.2 QQBrowser Spider",
    "qq browser preview": "Mozilla/5.0 QQBrowser/10.0 Preview",
    "curl": "curl/8.4.0",
    "wget": "Wget/1.21.4",
    "python-requests": "python-requests/2.31.0",
    "urllib": "Python-urllib/3.11",
    "aiohttp": "Python/3.11 aiohttp/3.9.1",
    "httpx": "python-httpx/0.27.0",
    "go": "Go-http-client/1.1",
    "java": "Java/17.0.2",
    "okhttp": "okhttp/4.12.0",
    "libwww": "libwww-perl/6.72",
    "scrapy": "Scrapy/2.11.0 (+https://scrapy.org)",
    "headless chrome": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36",
    "phantomjs": "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
    "PhantomJS/2.1.1 Safari/538.1",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "baiduspider": "Mozilla/5.0 (compatible; Baiduspider/2.0; "
    "+http://www.baidu.com/search/spider.html)",
    "bytespider": "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
    "yisouspider": "YisouSpider",
    "sogou": "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
    "bingbot": "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "twitterbot": "Twitterbot/1.0",
    "slackbot": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "telegrambot": "TelegramBot (like TwitterBot)",
    "whatsapp": "WhatsApp/2.23.20.0 A",
    "discordbot": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "linkedinbot": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient)",
    "slurp": "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
    "generic bot": "bot",
    "generic fetcher": "FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)",
    "generic crawler": "SomeCompanyCrawler/3.1",
}

HUMANS = {
    "mini-program ios": MINI_PROGRAM_IOS,
    "mini-program android": MINI_PROGRAM_ANDROID,
    "wechatdevtools": "Mozilla/5.0 (iPhone; CPU iPhone OS 13_2_3 like Mac OS X) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0.3 Mobile/15E148 Safari/604.1 "
    "wechatdevtools/1.06.2310080 MicroMessenger/8.0.5 Language/zh_CN webview/",
    "wecom": "Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 wxwork/4.1.10 MicroMessenger/7.0.1 Language/zh",
    "qq browser": "Mozilla/5.0 (Linux; U; Android 12; zh-cn; PGEM10 Build/SP1A.210812.016) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/89.0.4389.72 MQQBrowser/13.2 "
    "Mobile Safari/537.36",
    "tencent traveler": "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; TencentTraveler 4.0)",
    "sogou browser": "Mozilla/5.0 (Linux; Android 10; ELE-AL00) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/74.0 Mobile Safari/537.36 SogouMSE,SogouMobileBrowser/5.28.12",
    "cubot phone": "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/91.0.4472.120 Mobile Safari/537.36",
    "chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "safari iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "firefox": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "huawei": "Mozilla/5.0 (Linux; Android 10; HarmonyOS; NOH-AN00) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/99.0 HuaweiBrowser/12.0.4.300 Mobile Safari/537.36",
}

BOT_TOKENS = [
    "Googlebot/2.1",
    "Baiduspider",
    "WeChat-Preview",
    "facebookexternalhit/1.1",
    "python-requests/2.31",
    "HeadlessChrome/120.0",
    "curl/8.0",
    "QQ-URL-Manager",
    "Bytespider",
]


@pytest.mark.parametrize("user_agent", BOTS.values(), ids=BOTS.keys())
def test_preview_fetchers_crawlers_and_tools_are_bots(user_agent):
    assert is_bot(user_agent) is True


@pytest.mark.parametrize("user_agent", HUMANS.values(), ids=HUMANS.keys())
def test_mini_programs_and_browsers_are_humans(user_agent):
    assert is_bot(user_agent) is False


@given(st.text(max_size=500))
def test_is_bot_answers_a_bool_for_any_text(user_agent):
    assert is_bot(user_agent) in (True, False)


@given(
    prefix=st.text(max_size=60),
    token=st.sampled_from(BOT_TOKENS),
    suffix=st.text(max_size=60),
    upper=st.booleans(),
)
def test_a_bot_token_anywhere_makes_a_bot_whatever_the_case(prefix, token, suffix, upper):
    token = token.upper() if upper else token.lower()

    assert is_bot(f"{prefix} {token} {suffix}") is True


@given(st.lists(st.from_regex(r"[0-9.]{1,8}", fullmatch=True), max_size=5))
def test_version_noise_keeps_a_mini_program_human(versions):
    assert is_bot(f"{MINI_PROGRAM_ANDROID} {' '.join(versions)}") is False


@given(
    customer_id=st.integers(min_value=1, max_value=2**63 - 1),
    device=st.uuids() | st.none(),
    ip_hash=st.text(max_size=64),
    user_agent=st.text(max_size=400),
)
def test_the_customer_key_wins_over_device_and_address(customer_id, device, ip_hash, user_agent):
    key = visitor_key(
        customer_id=customer_id, device_id=device, ip_hash=ip_hash, user_agent=user_agent
    )

    assert key == f"c:{customer_id}"


@given(device=st.uuids(), ip_hash=st.text(max_size=64), user_agent=st.text(max_size=400))
def test_the_device_key_wins_over_the_address(device, ip_hash, user_agent):
    key = visitor_key(customer_id=None, device_id=device, ip_hash=ip_hash, user_agent=user_agent)

    assert key == f"d:{device}"
    assert uuid.UUID(key[2:]) == device


@given(ip_hash=st.text(max_size=64), user_agent=st.text(max_size=400))
def test_without_customer_or_device_the_key_hashes_address_and_user_agent(ip_hash, user_agent):
    key = visitor_key(customer_id=None, device_id=None, ip_hash=ip_hash, user_agent=user_agent)

    assert re.fullmatch(r"h:[0-9a-f]{64}", key)
    expected = hashlib.sha256(f"{ip_hash}|{user_agent}".encode("utf-8", "surrogatepass"))
    assert key == "h:" + expected.hexdigest()
    assert len(key) <= 80  # Click.visitor_key / ClickGate.visitor_key


def test_the_address_key_differs_by_address_and_by_user_agent():
    def key(ip_hash, user_agent):
        return visitor_key(customer_id=None, device_id=None, ip_hash=ip_hash, user_agent=user_agent)

    assert key("a" * 64, MINI_PROGRAM_IOS) == key("a" * 64, MINI_PROGRAM_IOS)
    assert key("a" * 64, MINI_PROGRAM_IOS) != key("b" * 64, MINI_PROGRAM_IOS)
    assert key("a" * 64, MINI_PROGRAM_IOS) != key("a" * 64, MINI_PROGRAM_ANDROID)
