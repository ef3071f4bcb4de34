from sqlalchemy import func, select, update

from common.data.db import Database, page_query, read_alone, utcnow
from common.errors import NotFound
from common.messaging.entrypoints import health_check, rpc
from common.messaging.outbox import Outbox
from common.observability.telemetry import Telemetry
from common.schemas import CatalogueQuerySchema, KeysetPageSchema, load, load_id
from products.contract import CONTRACT
from products.models import Base, CatalogueSize, OutboxMessage, Product
from products.schemas import (
    UPDATED_FIELDS, ProductChangesSchema, ProductFieldsSchema, ProductIdsSchema, dump_product)
from products.search import plan_of

class ProductsService:
    name = "products"

    db = Database(Base)
    # orders keeps its own copy of the catalogue from these events: none may be lost
    outbox = Outbox(OutboxMessage, CONTRACT)
    telemetry = Telemetry()

    ping = health_check()

    @rpc
    def create(self, name, price, description="", category=None):
        """Add a product; ``price`` is a decimal string such as "12.50"."""
        fields = load(ProductFieldsSchema, {
            "name": name, "price": price, "description": description, "category": category})
        now = utcnow()
        product = Product(**fields, created_at=now, updated_at=now)
        self.db.session.add(product)
        self.db.session.flush()  # assigns the id
        self._resize_catalogue(+1)
        created = dump_product(product)
        self.outbox.add("product_created", created)
        self.db.session.commit()
        return created

    @rpc
    def get(self, product_id):
        return dump_product(self._active(product_id))

    @rpc
    def list(self, limit=20, offset=0, after=None):
        """A page of the catalogue in id order: ``{"items": [...], "total": n}``;
        with ``after``, the products after the one with that id (no ``offset``)."""
        page = load(KeysetPageSchema, {"limit": limit, "offset": offset, **(
            {} if after is None else {"after": after})})
        active = select(Product.id).where(Product.deleted_at.is_(None))
        total = self.db.session.scalar(select(CatalogueSize.products))
        if "after" in page:
            query = page_query(Product, active.where(Product.id > page["after"]), Product.id,
                               page["limit"], 0)
        else:
            query = page_query(Product, active, Product.id, page["limit"], page["offset"],
                               total=total)
        items = self.db.session.scalars(query)
        return {"items": [dump_product(product) for product in items], "total": total}

    @rpc
    def search(self, q=None, category=None, min_price=None, max_price=None, sort=None,
               limit=20, offset=0, after=None):
        """Products by words, category and price, in an order:
        ``search(q="moka", max_price="30.00", sort="price")`` answers
        ``{"items": [...], "total": n}``, ``total`` counting every match.
        See products/search.py for how words are found."""
        given = {"q": q, "category": category, "min_price": min_price, "max_price": max_price,
                 "sort": sort, "after": after}
        query = load(CatalogueQuerySchema, {"limit": limit, "offset": offset, **{
            name: value for name, value in given.items() if value is not None}})
        read_alone(self.db.session)  # the page and its total are one statement
        plan, parameters = plan_of(query, self.db.session.get_bind().dialect.name)
        rows = self.db.session.execute(plan.page, parameters).all()
        if rows:
            total = rows[0].total
        elif query["offset"] or "after" in query:  # past the last match
            total = self.db.session.scalar(plan.count, parameters)
        else:
            total = 0
        return {"items": [dump_product(row) for row in rows], "total": total}

    @rpc
    def categories(self):
        """The categories of the catalogue's products, by name, with how many
        each holds: ``{"items": [{"name": "kitchen", "count": 3}]}``."""
        counts = self.db.session.execute(
            select(Product.category, func.count())
            .where(Product.deleted_at.is_(None), Product.category.is_not(None))
            .group_by(Product.category).order_by(Product.category))
        return {"items": [{"name": name, "count": count} for name, count in counts]}

    @rpc
    def get_many(self, ids):
        """The products among ``ids`` that are in the catalogue, in id order,
        in one query; ids that are unknown or deleted are left out."""
        ids = load(ProductIdsSchema, {"ids": ids})["ids"]
        products = self.db.session.scalars(
            select(Product)
            .where(Product.id.in_(set(ids)), Product.deleted_at.is_(None))
            .order_by(Product.id))
        return [dump_product(product) for product in products]

    @rpc
    def update(self, product_id, changes):
        """Change some fields: ``update(1, {"price": "8.00"})``."""
        product = self._active(product_id)
        changes = load(ProductChangesSchema, changes)
        for field, value in changes.items():
            setattr(product, field, value)
        product.updated_at = utcnow()
        updated = dump_product(product)
        self.outbox.add("product_changed", {**updated, "changed": sorted(changes)})
        # until 0.4.0, for consumers on 0.2.0: they know no other fields
        if known_to_them := sorted(set(changes) & set(UPDATED_FIELDS)):
            self.outbox.add("product_updated", {**updated, "changed": known_to_them})
        self.db.session.commit()
        return updated

    @rpc
    def delete(self, product_id):
        """Take a product out of the catalogue (a soft delete)."""
        product_id, now = load_id(product_id, "product"), utcnow()
        # conditional: of two deletions racing, one takes the product out
        # (and counts it out of the catalogue), the other finds it gone
        deleted = self.db.session.execute(
            update(Product).where(Product.id == product_id, Product.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now)).rowcount
        if not deleted:
            raise NotFound.entity("product", product_id)
        self._resize_catalogue(-1)
        self.outbox.add("product_deleted", {"id": product_id})
        self.db.session.commit()

    def _resize_catalogue(self, change):
        # after the product's own row: writers lock the two in the same order
        self.db.session.execute(update(CatalogueSize).values(
            products=CatalogueSize.products + change))

    def _active(self, product_id):
        product = self.db.session.get(Product, load_id(product_id, "product"))
        if product is None or product.deleted_at is not None:
            raise NotFound.entity("product", product_id)
        return product
