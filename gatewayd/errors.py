"""One error tree for gatewayd, split by what the operator should do about it.

Every error carries an English message for logs and a Japanese ``staff_message`` for the
status page, the close slip and the CLI. The class says who acts:

- ``ConfigError``      — fix the configuration file (installer).
- ``ProtocolError``    — the register link garbled something; the host retries by itself.
- ``DeviceError``      — check a cable or a device (staff / installer).
- ``StorageError``     — the box's own disk: full, read-only or corrupted (installer).
- ``FreeeError``       — freee会計; subclasses say whether to wait, relink, fix a setting or
                         ask freee's side (permissions, refused postings).
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error gatewayd raises on purpose."""

    staff_message: str = "ゲートウェイでエラーが発生しました。"

    def __init__(self, message: str, *, staff_message: str | None = None) -> None:
        super().__init__(message)
        if staff_message is not None:
            self.staff_message = staff_message


class ConfigError(GatewayError):
    """The configuration file (or a setting) is wrong: the installer must fix it."""

    staff_message = "設定ファイルに誤りがあります。設置担当者に連絡してください。"

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        value: object = None,
        expected: str | None = None,
        staff_message: str | None = None,
    ) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        if key is not None:
            text = f"{key}: {message}"
            if value is not None:
                text += f" (got {value!r})"
            if expected is not None:
                text += f"; expected {expected}"
        else:
            text = message
        super().__init__(text, staff_message=staff_message)


class ProtocolError(GatewayError):
    """Bytes from the register link break REGLINK/1: retried by the host, never fatal."""

    staff_message = "レジとの通信でデータが乱れました。自動で再試行します。"


class FrameError(ProtocolError):
    """A frame's layout, length or checksum is wrong (answered with NAK)."""


class RecordFormatError(ProtocolError):
    """A journal record does not match its type's fields and forms."""

    def __init__(self, message: str, *, record_no: int | None = None) -> None:
        self.record_no = record_no
        super().__init__(message)


class RegisterRefused(ProtocolError):
    """The register answered with S1 bit 0 (refused), with the reason bits."""

    def __init__(self, message: str, *, status: bytes) -> None:
        self.status = status
        super().__init__(message)


class DeviceError(GatewayError):
    """A device is missing, unplugged or silent: check the cable and the power."""

    staff_message = "機器と接続できません。ケーブルと電源を確認してください。"


class LinkDown(DeviceError):
    """The register did not answer after every resend, or its port failed."""

    staff_message = "レジと通信できません。レジの電源とケーブルを確認してください。"


class StorageError(GatewayError):
    """The state directory cannot be written or read: disk full, read-only or corrupt."""

    staff_message = "ゲートウェイの記憶領域に問題があります。設置担当者に連絡してください。"


class DiskFull(StorageError):
    staff_message = "ゲートウェイの記憶領域がいっぱいです。レジのデータはレジに残っています。"


class StoreCorrupt(StorageError):
    staff_message = "ゲートウェイのデータベースが壊れています。設置担当者に連絡してください。"


class StoreMissing(StorageError):
    """A read-only look at a store file that does not exist yet (the daemon never ran)."""

    staff_message = "まだ記録がありません（ゲートウェイが一度も動いていません）。"


class FreeeError(GatewayError):
    """Base of freee会計 failures. ``freee_message`` keeps freee's own words."""

    staff_message = "freee会計との連携でエラーが発生しました。"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        freee_message: str | None = None,
        staff_message: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.freee_message = freee_message
        super().__init__(message, staff_message=staff_message)


class FreeeRetryLater(FreeeError):
    """5xx, timeouts, dropped connections: wait and retry by itself."""

    staff_message = "freee会計に接続できません。自動で再送します。"


class FreeeRateLimited(FreeeRetryLater):
    """429 or freee's 403 limit body: pause the company's postings."""

    staff_message = "freee会計の利用回数の上限に達しました。時間をおいて自動で再送します。"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class FreeeFixSetting(FreeeError):
    """A master named in the settings is missing, or the fiscal year is closed."""

    staff_message = "freee会計の設定を確認してください。"


class FreeeRelink(FreeeError):
    """The link is missing or expired: link freee again on the status page."""

    staff_message = "freee会計との連携が切れています。ステータス画面から再連携してください。"


class FreeePermission(FreeeError):
    """The linked user lacks rights in the company."""

    staff_message = "freee会計のユーザーに権限がありません。管理者に権限を確認してください。"


class FreeeRefused(FreeeError):
    """freee refused the posting (4xx validation): the day is held with freee's message."""

    staff_message = "freee会計が取引の登録を拒否しました。内容を確認してください。"


class PrinterUnavailable(DeviceError):
    """The receipt printer cannot be opened, written or does not answer its status query."""

    staff_message = "レシートプリンターと通信できません。電源とケーブルを確認してください。"


class FrameRuleError(FrameError):
    """A REGLINK/1 frame breaks one layout rule of section 2; ``rule`` names it (``LEN``,
    ``L``, ``SEQ``, ``CMD``, ``DATA``, ``04``, ``STATUS``, ``05``, ``BCC``, ``03``, ``partial``)."""

    def __init__(self, message: str, *, rule: str) -> None:
        self.rule = rule
        super().__init__(f"{rule}: {message}")


class FrameDataError(ProtocolError):
    """A well-formed REGLINK/1 frame whose DATA does not fit its command (section 4)."""


class PortError(DeviceError):
    """The register's port cannot be opened, or failed while in use (unplugged adapter)."""

    staff_message = "レジの接続ポートを開けません。ケーブルとUSBアダプタを確認してください。"
