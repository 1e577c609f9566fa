"""Who acts. Services take ``actor: Actor`` (``None`` where the system may act, e.g. Celery)."""

from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

Actor = User


def request_actor(request: HttpRequest | Request) -> Actor:
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise NotAuthenticated()
    return user
