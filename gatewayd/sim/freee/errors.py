"""freee's error bodies, one constructor per case, so every refusal has freee's shape.

Shapes (notes/freee-api.md §4 and the schema's components):
- 400/404/500: ``{"status_code": N, "errors": [{"type": "status", "messages": [...]},
  {"type": "validation", "messages": [...]}]}``
- 401: ``{"message": ..., "code": ...}`` (expired/invalid token, user lacks a right), or the
  ``errors[].codes`` form for ``company_not_found``
- 403: ``{"message": ..., "code": ...}`` (app lacks a permission, or the rate limit)
- 429: ``tooManyRequestsError`` ``{"status_code": 429, "meta": {...}}``
- 503: ``serviceUnavailableError`` with ``type: "error"``
- token endpoint: RFC 6749 ``{"error": ..., "error_description": ...}`` (401 for
  ``invalid_grant``, as freee answers).
"""

from __future__ import annotations

from typing import Any

STATUS_MESSAGES = {
    400: "不正なリクエストです。",
    404: "リソースが見つかりません。",
    500: "エラーが発生しました。",
}

INVALID_GRANT_DESCRIPTION = (
    "指定された認可グラントは不正か、有効期限切れか、無効か、リダイレクトURIが異なるか、"
    "もしくは別のクライアントに適用されています。"
)

# Codes of freee's 401/403 bodies (developer.freee.co.jp 40x-checkpoint). The app-permission
# and rate-limit 403 codes are not published; these two are the emulator's choice
# (docs/freee-emulator.md).
CODE_EXPIRED_ACCESS_TOKEN = "expired_access_token"
CODE_USER_NO_PERMISSION = "user_do_not_have_permission"
CODE_COMPANY_NOT_FOUND = "company_not_found"
CODE_APP_NO_PERMISSION = "app_do_not_have_permission"
CODE_RATE_LIMIT = "api_rate_limit_exceeded"


class ApiError(Exception):
    """A refusal that the API answers with ``status`` and freee's ``body``."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(status: int, validation: list[str] | None = None) -> dict[str, Any]:
    errors: list[dict[str, Any]] = [
        {"type": "status", "messages": [STATUS_MESSAGES.get(status, "エラーが発生しました。")]}
    ]
    if validation:
        errors.append({"type": "validation", "messages": list(validation)})
    return {"status_code": status, "errors": errors}


def bad_request(*messages: str) -> ApiError:
    return ApiError(400, error_body(400, list(messages)))


def not_found(*messages: str) -> ApiError:
    return ApiError(404, error_body(404, list(messages) or None))


def internal_error() -> ApiError:
    return ApiError(500, error_body(500))


def service_unavailable() -> ApiError:
    body = {
        "status_code": 503,
        "errors": [{"type": "error", "messages": ["このAPIは現在ご利用いただけません。"]}],
    }
    return ApiError(503, body)


def expired_token() -> ApiError:
    return ApiError(
        401,
        {"message": "アクセスする権限がありません", "code": CODE_EXPIRED_ACCESS_TOKEN},
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def user_no_permission() -> ApiError:
    return ApiError(
        401,
        {
            "message": "このAPIにアクセスしたい場合、事業所の管理者にご確認ください。",
            "code": CODE_USER_NO_PERMISSION,
        },
    )


def company_not_found() -> ApiError:
    return ApiError(
        401,
        {
            "status_code": 401,
            "errors": [
                {
                    "type": "status",
                    "codes": [CODE_COMPANY_NOT_FOUND],
                    "messages": ["存在しないかすでに削除された事業所です。"],
                }
            ],
        },
    )


def app_no_permission() -> ApiError:
    return ApiError(
        403,
        {
            "message": "このアプリケーションにはアクセス権限がありません。"
            "アプリの権限設定を確認してください。",
            "code": CODE_APP_NO_PERMISSION,
        },
    )


def rate_limited(limit: int, reset_iso: str) -> ApiError:
    """freee's daily quota / excessive-access refusal: 403 (schema info "API 使用制限")."""
    return ApiError(
        403,
        {
            "message": "一定期間に過度のアクセスを検知したため、APIの利用を制限しています。"
            "時間をおいて再度お試しください。",
            "code": CODE_RATE_LIMIT,
        },
        {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": reset_iso,
        },
    )


def too_many_requests(limit: int, reset_iso: str) -> ApiError:
    """The optional per-second limit: 429 with the ``tooManyRequestsError`` body."""
    return ApiError(
        429,
        {
            "status_code": 429,
            "meta": {"limit": limit, "period": 1, "remaining": 0, "reset": reset_iso},
        },
        {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": reset_iso,
        },
    )


class OAuthError(Exception):
    """A token-endpoint refusal in RFC 6749 form."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.body = {"error": error, "error_description": description}


def invalid_grant() -> OAuthError:
    return OAuthError(401, "invalid_grant", INVALID_GRANT_DESCRIPTION)


def invalid_client() -> OAuthError:
    return OAuthError(401, "invalid_client", "クライアント認証に失敗しました。")


def invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


def unsupported_grant_type() -> OAuthError:
    return OAuthError(400, "unsupported_grant_type", "このグラントタイプには対応していません。")
