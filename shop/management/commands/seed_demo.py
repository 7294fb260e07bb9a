"""``manage.py seed_demo``: idempotent demo data for the embedded default. It lives in the shop,
the app every later one builds on (core imports no app). Later apps add their own demo data in a
``<app>/demo.py`` with ``seed(shop: dict) -> list[str]`` (given the shop's summary, returning the
lines to print), found here by name so that the shop imports none of them.

Creates (or finds) an operator account, the shop's demo catalog, community, pickup point and
shopper, and arms a demo announcement that the periodic job delivers about 20 seconds later, so a
WebSocket client connected with the printed token sees a notification arrive.
"""

import os
from datetime import timedelta
from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from core.models import Announcement, User
from core.tokens import session_start
from shop.demo import seed_shop
from shop.models import Customer

OPERATOR_USERNAME = "operator"
DEMO_ANNOUNCEMENT_TITLE = "Welcome to the demo"


class Command(BaseCommand):
    help = "Load idempotent demo data and print how to use it."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Allow with DEBUG off.")

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates known credentials; refusing with DEBUG off (use --force)."
            )
        password = os.environ.get("DEMO_OPERATOR_PASSWORD", "operator-demo-pass")
        operator, created = User.objects.get_or_create(
            username=OPERATOR_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created or not operator.check_password(password):
            operator.set_password(password)
            operator.is_staff = operator.is_superuser = True
            operator.save()

        summary = seed_shop()
        later_lines: list[str] = []
        for config in apps.get_app_configs():
            if config.name == "shop":
                continue
            try:
                module = import_module(f"{config.name}.demo")
            except ModuleNotFoundError as exc:
                if exc.name == f"{config.name}.demo":
                    continue  # this app has no demo data
                raise
            later_lines += module.seed(summary)

        if not Announcement.objects.filter(
            title=DEMO_ANNOUNCEMENT_TITLE, sent_at__isnull=True
        ).exists():
            Announcement.objects.create(
                title=DEMO_ANNOUNCEMENT_TITLE,
                body="Delivered by the periodic announcements job over your WebSocket.",
                send_at=timezone.now() + timedelta(seconds=20),
            )

        shopper = Customer.objects.get(pk=summary["shopper_customer_id"])
        token = session_start(user=shopper.user, user_agent="seed_demo").access_token

        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  Operator (admin + staff API): {OPERATOR_USERNAME} / {password}")
        self.stdout.write('  Shopper login: POST /api/v1/auth/wechat {"code": "demo-shopper"}')
        leader_code = summary["leader_login_code"]
        self.stdout.write(f'  Leader login:  POST /api/v1/auth/wechat {{"code": "{leader_code}"}}')
        self.stdout.write(f"  Demo shopper access token (15 min): {token}")
        self.stdout.write(
            f"  Community #{summary['community_id']}, pickup point #{summary['pickup_point_id']}, "
            f"{len(summary['product_ids'])} products"
        )
        self.stdout.write(
            f"  Flash sale #{summary['flash_session_id']} starts in a few minutes: GET "
            "/api/v1/flash/sessions; subscribe to its topic "
            f'{{"type": "subscribe", "topic": "flash:{summary["flash_session_id"]}"}}'
        )
        self.stdout.write(
            "  A demo announcement is due in ~20 s; connect to ws://.../ws/stream/ and send"
        )
        self.stdout.write('    {"type": "auth", "token": "<the token above>"} to receive it.')
        for line in later_lines:
            self.stdout.write(f"  {line}")
