"""The page's words, Japanese first and English as an option (``?lang=en`` or a cookie).

One table, key → (日本語, English); a missing key is a test failure, never a blank.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGS = ("ja", "en")
DEFAULT_LANG = "ja"

MESSAGES: Mapping[str, tuple[str, str]] = {
    # frame
    "app.title": ("ゲートウェイの状況", "Gateway status"),
    "nav.overview": ("状況", "Overview"),
    "nav.logout": ("ログアウト", "Log out"),
    "nav.other_lang": ("English", "日本語"),
    "nav.back": ("状況の画面へ戻る", "Back to the overview"),
    "page.updated": ("{time} 時点", "As of {time}"),
    "page.version": ("gatewayd {version}", "gatewayd {version}"),
    "page.tls_fingerprint": ("証明書 SHA-256", "Certificate SHA-256"),
    # login
    "login.title": ("ログイン", "Log in"),
    "login.password": ("パスワード", "Password"),
    "login.submit": ("ログイン", "Log in"),
    "login.failed": ("パスワードが違います。", "Wrong password."),
    "login.limited": (
        "ログインの試行が多すぎます。{minutes}分後にもう一度お試しください。",
        "Too many attempts. Try again in {minutes} min.",
    ),
    "login.no_password": (
        "パスワードがまだ設定されていません。ゲートウェイで「sudo gatewayd passwd」を実行して"
        "設定してください（設置担当者の作業です）。",
        "No password is set yet. Run “sudo gatewayd passwd” on the gateway (installer task).",
    ),
    "login.busy": (
        "ログインが混み合っています。数秒後にもう一度お試しください。",
        "Logins are busy. Try again in a few seconds.",
    ),
    "login.expired": (
        "画面の有効期限が切れました。もう一度ログインしてください。",
        "The page expired. Please log in again.",
    ),
    "login.required": ("ログインしてください。", "Please log in."),
    "logout.done": ("ログアウトしました。", "Logged out."),
    # errors
    "error.title": ("エラー", "Error"),
    "error.generic": (
        "エラーが発生しました。もう一度お試しください。続く場合は設置担当者に連絡してください。",
        "Something went wrong. Try again; if it persists, call the installer.",
    ),
    "error.csrf": (
        "送信を受け付けられませんでした（画面の有効期限切れ、または不正な送信）。"
        "画面を開き直してからもう一度操作してください。",
        "The request was refused (the page expired or the request was forged). "
        "Reload the page and try again.",
    ),
    "error.login_required": (
        "ログインしていないため操作できません。",
        "You are not logged in; the action was refused.",
    ),
    "error.not_found": ("ページが見つかりません。", "Page not found."),
    "error.bad_request": ("入力が正しくありません。", "The request is not valid."),
    # statuses
    "status.synced": ("送信済", "Sent"),
    "status.sending": ("送信中", "Sending"),
    "status.held": ("保留", "Held"),
    "status.open": ("未閉局", "Not closed"),
    "status_help.synced": ("freee会計に届いています。", "It has reached freee."),
    "status_help.sending": (
        "自動で送信しています。このままお待ちください。",
        "Being sent automatically. Nothing to do.",
    ),
    "status_help.open": (
        "レジで閉局（精算）すると自動で送信されます。",
        "It is sent by itself after the register's close.",
    ),
    "status_help.held": ("送信を止めています。下の対処をしてください。", "Not sent. See below."),
    # held causes: title and the step that fixes it
    "held.day_check": (
        "レジの精算データに不整合があります",
        "The register's close data does not add up",
    ),
    "fix.day_check": (
        "レジで再精算（再閉局）してください。データはゲートウェイに保存されていて失われません。"
        "直らないときは設置担当者に連絡してください。",
        "Close the day again on the register (re-close). The records are kept on the gateway. "
        "If it stays held, call the installer.",
    ),
    "held.fiscal_year": (
        "freee会計にこの日付の会計年度がないか、締められています",
        "freee has no open fiscal year for this date",
    ),
    "fix.fiscal_year": (
        "freee会計で会計年度を作成するか、締めを解除してください。解決すると自動で送信されます。",
        "Create the fiscal year in freee or reopen it. The day is then sent by itself.",
    ),
    "held.missing_master": (
        "設定にある勘定科目・税区分・口座などがfreee会計にありません",
        "A setting names an account, tax or walletable that freee lacks",
    ),
    "fix.missing_master": (
        "設置担当者に連絡してください（設定を直すか、freee会計に同じ名前を作成します）。"
        "直ると自動で送信されます。",
        "Call the installer (fix the setting, or create the name in freee). "
        "The day is then sent by itself.",
    ),
    "held.link": ("freee会計との連携が切れています", "The link to freee is missing or expired"),
    "fix.link": (
        "「freee会計との連携」から再連携してください。連携すると自動で送信されます。",
        "Link freee again under “freee link”. The day is then sent by itself.",
    ),
    "held.edited_in_freee": (
        "送信後にfreee会計で取引が編集されました",
        "A posting was edited in freee after it was sent",
    ),
    "fix.edited_in_freee": (
        "日付の詳細を開き、両方の内容を見比べて「freeeの内容を残す」か"
        "「ゲートウェイの内容で送り直す」を選んでください。",
        "Open the day, compare both versions and choose “Keep freee's” or “Post ours again”.",
    ),
    "held.refused": ("freee会計が取引の登録を拒否しました", "freee refused a posting"),
    "fix.refused": (
        "freeeのメッセージを設置担当者に伝えてください。原因を直したら「この日を再送」を"
        "押してください。",
        "Tell the installer freee's message. Once fixed, press “Resend this day”.",
    ),
    "held.needs_review": (
        "freee会計に同じ管理番号の取引が複数あります",
        "freee holds the same ref number more than once",
    ),
    "fix.needs_review": (
        "freee会計で重複した取引を削除してから「この日を再送」を押してください。",
        "Delete the duplicate in freee, then press “Resend this day”.",
    ),
    "held.freee_message": ("freeeのメッセージ", "freee's message"),
    "held.detail": ("詳細", "Detail"),
    # overview
    "overview.today": ("本日 {date}", "Today {date}"),
    "overview.register": ("レジ {id}", "Register {id}"),
    "overview.recent": ("最近の営業日", "Recent days"),
    "overview.no_recent": ("以前の営業日はまだありません。", "No earlier days yet."),
    "tap.title": ("印字タップ {id}", "Print tap {id}"),
    "tap.last_report": (
        "最後に読み取った精算レポート（{date}、No.{counter}、{time} 取得）",
        "Last Z report captured ({date}, no. {counter}, at {time})",
    ),
    "tap.none": ("精算レポートはまだ読み取っていません。", "No Z report captured yet."),
    "tap.verdict.accepted": ("読み取りOK", "Read and accepted"),
    "tap.verdict.held": ("保留（レポートの数字が合いません）", "Held (the report does not add up)"),
    "tap.verdict.ignored": ("対象外（送信しません）", "Ignored (not posted)"),
    "overview.attention": (
        "対応が必要な日が{n}日あります。",
        "{n} day(s) need attention.",
    ),
    "overview.all_good": (
        "閉局した日はすべてfreee会計に送信済みです。",
        "Every closed day has reached freee.",
    ),
    "overview.sending": (
        "送信中の日があります。自動で送信されます。",
        "Some days are being sent automatically.",
    ),
    "col.date": ("営業日", "Business day"),
    "col.status": ("状態", "Status"),
    "col.register_total": ("レジ売上", "Register sales"),
    "col.freee_total": ("freee登録済", "In freee"),
    "col.postings": ("取引", "Postings"),
    "col.detail": ("詳細", "Detail"),
    "totals.mismatch": ("金額が一致しません", "Totals differ"),
    "totals.match": ("一致", "Match"),
    "totals.mismatch_hint": (
        "freee会計の金額がレジと一致しません。freee会計で取引が削除・変更された可能性があります。"
        "「この日を再送」でfreeeに足りない取引を送れます（二重登録にはなりません）。",
        "freee's total differs from the register's: a posting may have been deleted or changed "
        "in freee. “Resend this day” sends what freee lacks (never twice).",
    ),
    "day.open_link": ("詳細", "Details"),
    "day.next_attempt": ("次の送信 {time}", "Next attempt {time}"),
    # freee link
    "freee.title": ("freee会計との連携", "freee link"),
    "freee.company": ("事業所", "Company"),
    "freee.state": ("状態", "State"),
    "freee.refreshed": ("トークン更新", "Token refreshed"),
    "freee.expires": ("連携の期限", "Link expires"),
    "freee.last_error": ("最後のエラー", "Last error"),
    "freee.expires_soon": (
        "あと{days}日で連携が切れます。再連携してください。",
        "The link lapses in {days} day(s). Please relink.",
    ),
    "freee.link": ("freee会計と連携する", "Link freee"),
    "freee.relink": ("freee会計と再連携する", "Relink freee"),
    "freee.link_oob": ("認可コードを入力して連携する", "Link with a code"),
    "link_state.linked": ("連携中", "Linked"),
    "link_state.missing": ("未連携", "Not linked"),
    "link_state.expired": ("期限切れ", "Expired"),
    "link_state.no_permission": ("権限がありません", "No permission"),
    "link_state.failing": ("更新に失敗中（自動で再試行）", "Refresh failing (retrying)"),
    # link pages
    "link.title": ("freee会計と連携", "Link freee"),
    "link.step_open": (
        "下のボタンでfreee会計を開き、事業所を選んで「許可する」を押してください。"
        "終わるとこの画面に戻ります。",
        "Open freee with the button below, choose the company and press “Allow”. "
        "You then come back here.",
    ),
    "link.open": ("freee会計で許可する", "Authorize in freee"),
    "link.step_code": (
        "freee会計に認可コードが表示されたら、ここに貼り付けてください。",
        "If freee shows an authorization code, paste it here.",
    ),
    "link.code": ("認可コード", "Authorization code"),
    "link.finish": ("連携を完了する", "Finish linking"),
    "link.done": ("freee会計（{company}）と連携しました。", "Linked to freee ({company})."),
    "link.failed": ("連携できませんでした。", "Linking failed."),
    "link.denied": (
        "freee会計で許可されませんでした。もう一度やり直してください。",
        "freee did not grant access. Please start again.",
    ),
    "link.state_invalid": (
        "連携の手続きが無効か期限切れです。もう一度「freee会計と連携する」からやり直してください。",
        "This link request is invalid or expired. Start again from “Link freee”.",
    ),
    # devices
    "devices.title": ("機器", "Devices"),
    "devices.register": ("レジ {id}", "Register {id}"),
    "devices.printer": ("レシートプリンター", "Receipt printer"),
    "devices.drawer": ("ドロワー", "Cash drawer"),
    "devices.last_contact": ("最終通信 {time}", "Last contact {time}"),
    "devices.checked": ("確認 {time}", "Checked {time}"),
    "devices.last_kick": ("最後に開いた時刻 {time}", "Last opened {time}"),
    "health.ok": ("正常", "OK"),
    "health.warning": ("注意", "Attention"),
    "health.error": ("異常", "Error"),
    "health.unknown": ("不明", "Unknown"),
    "health.checking": ("確認中", "Checking"),
    "health.not_configured": ("未設定", "Not configured"),
    "paper.ok": ("用紙あり", "Paper OK"),
    "paper.near_end": ("用紙残りわずか", "Paper low"),
    "paper.out": ("用紙切れ", "Out of paper"),
    "paper.unknown": ("用紙状態不明", "Paper state unknown"),
    "printer.cover_open": ("カバーが開いています", "Cover open"),
    "printer.offline": ("オフライン", "Offline"),
    "drawer.open": ("開いています", "Open"),
    "drawer.closed": ("閉まっています", "Closed"),
    "action.test_slip": ("テスト印刷", "Print test slip"),
    "action.kick_drawer": ("ドロワーを開く", "Open drawer"),
    "done.test_slip": ("テスト印刷を送りました。", "Test slip printed."),
    "done.kick_drawer": ("ドロワーを開きました。", "Drawer opened."),
    # queue
    "queue.title": ("送信待ち", "Queue"),
    "queue.waiting": ("送信待ちの取引", "Postings waiting"),
    "queue.held": ("保留中の取引", "Postings held"),
    "queue.next": ("次の送信", "Next attempt"),
    "queue.oldest": ("最も古い送信待ち", "Waiting since"),
    "queue.paused": (
        "freee会計の利用上限のため {time} まで送信を止めています（自動で再開）。",
        "Paused until {time} by freee's rate limit (resumes by itself).",
    ),
    "queue.last_sync": ("最後に送信できた時刻", "Last successful sync"),
    "queue.never": ("まだありません", "Never"),
    # errors
    "errors.title": ("最近のエラー", "Recent errors"),
    "errors.none": ("最近のエラーはありません。", "No recent errors."),
    "errors.technical": ("技術情報", "Technical detail"),
    "source.register": ("レジ", "Register"),
    "source.freee": ("freee会計", "freee"),
    "source.device": ("機器", "Device"),
    "source.storage": ("記憶領域", "Storage"),
    "source.config": ("設定", "Configuration"),
    "source.gateway": ("ゲートウェイ", "Gateway"),
    # resend
    "tools.title": ("設置担当者向け操作", "Installer tools"),
    "resend.title": ("期間を指定して再送", "Resend a range of days"),
    "resend.help": (
        "指定した日をfreee会計と照合し、freeeに足りない取引だけを送ります。"
        "送信済みの日を再送しても二重登録にはなりません。",
        "Compares the days with freee and sends only what freee lacks. "
        "Resending a sent day never posts twice.",
    ),
    "resend.register": ("レジ", "Register"),
    "resend.start": ("開始日", "From"),
    "resend.end": ("終了日", "To"),
    "resend.submit": ("再送する", "Resend"),
    "resend.day": ("この日を再送", "Resend this day"),
    "resend.done": (
        "{days}日分を再送の対象にしました。自動で送信されます。",
        "{days} day(s) queued for re-sync; they are sent automatically.",
    ),
    "resend.none": (
        "その期間にゲートウェイが保存している日はありません。",
        "The gateway holds no day in that range.",
    ),
    "resend.bad_range": (
        "日付の範囲が正しくありません（開始日 ≦ 終了日、最大{max}日）。",
        "The date range is not valid (from ≤ to, at most {max} days).",
    ),
    # day page
    "day.title": ("{date} レジ {register}", "{date} register {register}"),
    "day.summary": ("概要", "Summary"),
    "day.close_no": ("精算回数", "Close no."),
    "day.receipts": ("レシート数", "Receipts"),
    "day.closed_at": ("閉局時刻", "Closed at"),
    "day.plan": ("送信内容（計画）", "Plan (what is posted)"),
    "day.plan_none": (
        "閉局前のため、送信内容はまだありません。",
        "No plan yet: the day is not closed.",
    ),
    "day.plan_json": ("計画のJSON（gatewayd plan と同じ形式）", "Plan JSON (as gatewayd plan)"),
    "day.granularity": ("単位", "Granularity"),
    "day.postings": ("freee会計への取引", "Postings in freee"),
    "day.ref": ("管理番号", "Ref number"),
    "day.kind": ("種類", "Kind"),
    "day.amount": ("金額", "Amount"),
    "day.state": ("状態", "State"),
    "day.freee_id": ("freee ID", "freee id"),
    "day.lines": ("明細", "Lines"),
    "plan.account": ("勘定科目", "Account"),
    "plan.tax": ("税区分", "Tax"),
    "plan.vat": ("消費税", "VAT"),
    "plan.item": ("品目", "Item"),
    "plan.description": ("備考", "Description"),
    "day.payments": ("決済", "Payments"),
    "day.unsettled": ("未決済", "Unsettled"),
    "day.attempts": ("送信の履歴", "Attempt history"),
    "day.no_attempts": ("まだ送信していません。", "Nothing sent yet."),
    "day.when": ("時刻", "Time"),
    "day.action": ("要求", "Request"),
    "day.outcome": ("結果", "Outcome"),
    "day.message": ("内容", "Message"),
    "day.edited": ("freee会計で編集された取引", "Postings edited in freee"),
    "day.edited_help": (
        "左がゲートウェイの送った内容、右がfreee会計の現在の内容です。≠ の行が違います。",
        "Left: what the gateway sent. Right: what freee holds now. Rows marked ≠ differ.",
    ),
    "day.ours": ("ゲートウェイの内容", "Gateway's version"),
    "day.theirs": ("freee会計の現在の内容", "freee's version now"),
    "day.deleted_in_freee": ("freee会計で削除されています", "Deleted in freee"),
    "day.field": ("項目", "Field"),
    "day.all_fields": ("すべての項目を比べる", "Compare every field"),
    "day.keep_freee": ("freeeの内容を残す", "Keep freee's"),
    "day.post_ours": ("ゲートウェイの内容で送り直す", "Post ours again"),
    "day.keep_help": (
        "freee会計の内容を正とし、この日を送信済みにします。",
        "freee's version stands; the day counts as sent.",
    ),
    "day.post_help": (
        "freee会計の取引をゲートウェイの内容で上書きします。",
        "freee's posting is replaced by the gateway's version.",
    ),
    "resolved.keep_freee": ("freee会計の内容を残しました。", "Kept freee's version."),
    "resolved.post_ours": (
        "ゲートウェイの内容で送り直します。",
        "The gateway's version will be posted again.",
    ),
    "day.not_found": ("この日のデータはありません。", "The gateway holds no such day."),
    "posting_state.pending": ("送信待ち", "Waiting"),
    "posting_state.sending": ("送信中", "Sending"),
    "posting_state.done": ("送信済", "Sent"),
    "posting_state.held": ("保留", "Held"),
    "kind.deal": ("取引", "Deal"),
    "kind.transfer": ("口座振替", "Transfer"),
    "type.income": ("収入", "Income"),
    "type.expense": ("支出", "Expense"),
    "outcome.sent": ("登録済", "Posted"),
    "outcome.found": ("freeeに既にあり", "Already in freee"),
    "outcome.not_found": ("freeeになし（送信へ）", "Not in freee (will send)"),
    "outcome.unchanged": ("変更なし", "Unchanged"),
    "outcome.deleted": ("削除", "Deleted"),
    "outcome.retry": ("一時的な失敗（再試行）", "Transient failure (retry)"),
    "outcome.ambiguous": ("結果不明（照会へ）", "Unknown result (look-up next)"),
    "outcome.refused": ("拒否", "Refused"),
}


def translate(lang: str, key: str, **params: object) -> str:
    """The text of ``key`` in ``lang``, with ``{name}`` parameters filled in."""
    ja, en = MESSAGES[key]
    text = en if lang == "en" else ja
    return text.format(**params) if params else text


def pick_lang(query: str | None, cookie: str | None) -> str:
    for value in (query, cookie):
        if value in LANGS:
            return value
    return DEFAULT_LANG
