"""Assertions shared by the core tests."""

from typing import Any


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    """Exactly the error envelope, with ``status`` and ``code``; returns the error object."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error
