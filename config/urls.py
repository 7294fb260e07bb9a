from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from config.api import api
from core.health import ReadinessView, liveness

urlpatterns = [
    path("", RedirectView.as_view(url="/api/v1/docs", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("health", liveness, name="health"),
    path("health/ready", ReadinessView.as_view(), name="health-ready"),
]
