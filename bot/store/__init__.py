"""Persistence: SQLAlchemy Core tables, Alembic migrations, a unit of work and its repositories.

    db = Database("sqlite:///modelbot.db", audit_channel="C0AUDIT")
    db.upgrade()
    with db.uow() as uow:
        req = uow.requests.add(request)
        uow.audit.append(at=now, actor="U01", action="rollback.request", outcome="ok",
                         request_id=req.id, model=req.model, detail={})
        uow.commit()

Domain values (bot.core) go in and come out; rows never leave this package.
"""

from bot.core.outbox import OutboxMessage
from bot.store.database import Database
from bot.store.unit_of_work import UnitOfWork

__all__ = ["Database", "OutboxMessage", "UnitOfWork"]
