"""The orders service's copy of the catalogue, as database statements.

Placing an order needs each product's name and price, and whether it was
deleted. Rather than ask the products service on every order, orders keeps
those from the products service's events (event-carried state transfer:
products publishes them through its outbox, so none is lost) and asks
products only for a product it has not heard of yet.

Events may arrive twice or out of order (two products instances): a product
is only ever replaced by a newer version of itself (``updated_at``), and a
deleted one stays deleted.
"""
from datetime import datetime, timezone

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from orders.models import CatalogueProduct

_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# what a deletion leaves for a product orders never heard of
_TOMBSTONE = {"name": "", "price": 0, "updated_at": datetime.min.replace(tzinfo=timezone.utc)}


# built once: every order reads it
_READ = (select(*(CatalogueProduct.__table__.c[name] for name in ("id", "name", "price", "deleted")))
         .where(CatalogueProduct.__table__.c.id.in_(bindparam("ids", expanding=True))))


def read(session, product_ids):
    """``{id: {id, name, price, deleted}}`` of the products among
    ``product_ids`` that orders knows of, deleted ones included."""
    return {row["id"]: dict(row) for row in session.execute(
        _READ, {"ids": sorted(set(product_ids))}).mappings()}


def remember(session, products):
    """Store products (``{id, name, price, updated_at}``), each unless the copy
    already holds that version or a newer one."""
    if not products:
        return
    insert = _INSERT[session.get_bind().dialect.name](CatalogueProduct)
    statement = insert.values([
        {"id": p["id"], "name": p["name"], "price": p["price"],
         "updated_at": p["updated_at"], "deleted": False} for p in products])
    session.execute(statement.on_conflict_do_update(
        index_elements=["id"],
        set_={"name": statement.excluded.name, "price": statement.excluded.price,
              "updated_at": statement.excluded.updated_at},
        where=CatalogueProduct.updated_at < statement.excluded.updated_at))


def forget(session, product_id):
    """The product was deleted: it can no longer be ordered, whatever comes later."""
    insert = _INSERT[session.get_bind().dialect.name](CatalogueProduct)
    session.execute(
        insert.values(id=product_id, deleted=True, **_TOMBSTONE)
        .on_conflict_do_update(index_elements=["id"], set_={"deleted": True}))
