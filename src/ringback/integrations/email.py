"""Staff alert email over SMTP: the :class:`ringback.ports.AlertEmailer` adapter."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ringback.config import SmtpServer
from ringback.logs import log_event
from ringback.ports import AlertDeliveryFailed

log = logging.getLogger(__name__)


class SmtpEmailer:
    """:class:`ringback.ports.AlertEmailer` over SMTP: one connection per message.

    TLS certificates are verified. A timeout after the message was handed over is
    reported as retryable, so staff may rarely get an alert twice, never zero times.
    """

    def __init__(self, server: SmtpServer, sender: str, *, timeout: float) -> None:
        self._server = server
        self._sender = sender
        self._timeout = timeout

    def _connect(self) -> smtplib.SMTP:
        server = self._server
        if server.security == "tls":
            return smtplib.SMTP_SSL(
                server.host,
                server.port,
                timeout=self._timeout,
                context=ssl.create_default_context(),
            )
        return smtplib.SMTP(server.host, server.port, timeout=self._timeout)

    def _message(self, to: list[str], subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
        message.set_content(body)
        return message

    def send(self, to: list[str], subject: str, body: str) -> None:
        message = self._message(to, subject, body)
        server = self._server
        try:
            with self._connect() as smtp:
                if server.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if server.username:
                    smtp.login(server.username, server.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise AlertDeliveryFailed(
                f"SMTP refused every recipient (codes {codes})",
                retry=all(400 <= code < 500 for code in codes),
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise AlertDeliveryFailed(
                f"SMTP login refused ({exc.smtp_code})", retry=False
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise AlertDeliveryFailed(
                f"SMTP answered {exc.smtp_code}", retry=400 <= exc.smtp_code < 500
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise AlertDeliveryFailed(
                f"{server} does not offer STARTTLS or AUTH as configured", retry=False
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise AlertDeliveryFailed(f"SMTP to {server} failed: {type(exc).__name__}") from None
        if refused:
            log_event(
                log,
                "staff_alert.email_partly_refused",
                logging.WARNING,
                refused=len(refused),
                recipients=len(to),
            )
