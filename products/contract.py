"""What the products service promises (common.contracts): the events it
publishes and the RPC methods it offers."""
from marshmallow import fields

from common.contracts import PING, Contract, Event, Method, arguments, page_of
from common.schemas import CatalogueQuerySchema, KeysetPageSchema, id_field
from products.schemas import (
    CategoriesSchema, ProductChangedSchema, ProductChangesSchema, ProductDeletedSchema,
    ProductFieldsSchema, ProductIdsSchema, ProductSchema, ProductUpdatedSchema)

PRODUCT = {"id": 7, "name": "Moka pot", "description": "Three cups", "price": "24.90",
           "category": "kitchen", "created_at": "2026-12-01T09:30:00+00:00",
           "updated_at": "2026-12-01T09:30:00+00:00"}
CHANGED = {**PRODUCT, "price": "22.50", "updated_at": "2026-12-02T10:00:00+00:00",
           "changed": ["price"]}
PRODUCT_ID = arguments(product_id=id_field(required=True))

CONTRACT = Contract(
    "products",
    events=(
        Event("product_created", ProductSchema, 2, "A product was added to the catalogue",
              PRODUCT),
        Event("product_changed", ProductChangedSchema, 1,
              "A product changed: the product as it now is, and the fields that changed",
              CHANGED),
        Event("product_updated", ProductUpdatedSchema, 2,
              "Deprecated, gone in 0.4.0: product_changed, published only when a field 0.1.0 "
              "knew changed", CHANGED),
        Event("product_deleted", ProductDeletedSchema, 1,
              "A product was taken out of the catalogue", {"id": 7}),
    ),
    methods=(
        PING,
        Method("create", ProductFieldsSchema, ProductSchema,
               "Add a product; emits product_created"),
        Method("get", PRODUCT_ID, ProductSchema, "A product in the catalogue"),
        Method("list", KeysetPageSchema, page_of(ProductSchema),
               "A page of the catalogue in id order; with after, the products after that id"),
        Method("search", CatalogueQuerySchema, page_of(ProductSchema),
               "Products by words, category and price range, sorted; total counts the matches"),
        Method("categories", arguments(), CategoriesSchema,
               "The categories of the catalogue, by name, with how many products each holds"),
        Method("get_many", ProductIdsSchema, ProductSchema,
               "The products among ids that are in the catalogue, in id order", many=True),
        Method("update", arguments(
                   product_id=id_field(required=True),
                   changes=fields.Nested(ProductChangesSchema, required=True)),
               ProductSchema, "Change some of a product's fields; emits product_updated"),
        Method("delete", PRODUCT_ID, None,
               "Take a product out of the catalogue; emits product_deleted"),
    ),
)
