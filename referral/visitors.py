"""Who opened a link, as far as de-duplication and bot filtering need to know (pure: no ORM).

``is_bot(user_agent)``: link-preview fetchers, crawlers and tools are recorded as ``bot`` clicks
and never counted. One case-insensitive regex (``BOT_PATTERN``), any of:

- no user agent at all (missing, empty or blank);
- WeChat / WeCom link previews: ``WeChat-Preview``, ``weixin spider``, and the generic words
  below alongside ``MicroMessenger`` or ``WXWork`` (their preview fetchers say ``Spider``,
  ``Bot``, ``Preview`` or ``Crawler``); ``wechatdevtools`` (the developer tools) is a human;
- QQ previews: ``QQ-URL-Manager``, ``QQBrowser`` with ``Spider`` / ``Preview`` (the generic
  words); ``TencentTraveler`` (an old QQ browser) is a human;
- tools: ``curl/``, ``wget/``, ``python-requests``, ``python-urllib``, ``aiohttp``, ``httpx``,
  ``Go-http-client``, ``Java/``, ``okhttp``, ``libwww``, ``Scrapy``, ``HeadlessChrome``,
  ``PhantomJS``;
- generic words: ``bot`` at the end of a word (``Googlebot/2.1``, ``bingbot``, ``Twitterbot``,
  ``Slackbot``, ``TelegramBot``, ``Discordbot``, ``LinkedInBot``, a bare ``bot``), but not the
  Android brand ``CUBOT``; ``crawler``, ``spider`` (``Baiduspider``, ``Bytespider``,
  ``YisouSpider``, ``Sogou web spider``), ``slurp``, ``preview``, ``fetcher``;
- named fetchers without such a word: ``facebookexternalhit``, ``WhatsApp``.

A normal mini-program (``... MicroMessenger/8.0.47 ... miniProgram/wx...``), WeChat's and
Sogou's own browsers and ordinary browsers are humans.

``visitor_key(...)``: who visited, for "one counted click per link per visitor per window":
``c:<customer id>`` once logged in, else ``d:<device uuid>``, else ``h:<sha256 hex of
"<ip hash>|<user agent>">``."""

import hashlib
import re
import uuid

_BOT_WORDS = (
    r"wechat-?preview",
    r"weixin\W?spider",
    r"qq-url-manager",
    r"\bcurl/",
    r"\bwget/",
    r"python-requests",
    r"python-urllib",
    r"aiohttp",
    r"\bhttpx\b",
    r"go-http-client",
    r"\bjava/",
    r"okhttp",
    r"libwww",
    r"scrapy",
    r"headlesschrome",
    r"phantomjs",
    r"(?<!cu)bot\b",
    r"crawler",
    r"spider",
    r"slurp",
    r"preview",
    r"fetcher",
    r"facebookexternalhit",
    r"whatsapp",
)
BOT_PATTERN = re.compile("|".join(_BOT_WORDS), re.IGNORECASE)


def is_bot(user_agent: str | None) -> bool:
    """Whether a visit with this user agent is a preview fetcher, crawler or tool (see the module
    docstring for the list); a missing or blank user agent is one."""
    if user_agent is None or not user_agent.strip():
        return True
    return BOT_PATTERN.search(user_agent) is not None


def visitor_key(
    *,
    customer_id: int | None,
    device_id: uuid.UUID | None,
    ip_hash: str,
    user_agent: str,
) -> str:
    """The de-duplication key of a visitor (at most 66 characters): the customer wins over the
    device, the device over the address and user agent."""
    if customer_id is not None:
        return f"c:{customer_id}"
    if device_id is not None:
        return f"d:{device_id}"
    digest = hashlib.sha256(f"{ip_hash}|{user_agent}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"h:{digest}"
