"""What the inventory service promises (common.contracts): the events it
publishes and the RPC methods it offers."""
from common.contracts import PING, Contract, Event, Method, arguments
from common.schemas import id_field
from inventory.schemas import (
    ProductIdsSchema, StockChangeSchema, StockReservationFailedSchema, StockReservedSchema,
    StockSchema)

CONTRACT = Contract(
    "inventory",
    events=(
        Event("stock_reserved", StockReservedSchema, 1,
              "Every line of an order is reserved, until it is paid, cancelled or expires",
              {"order_id": 42}),
        Event("stock_reservation_failed", StockReservationFailedSchema, 1,
              "An order could not be reserved; nothing of it is",
              {"order_id": 43, "reason": "insufficient_stock",
               "short": [{"product_id": 7, "requested": 5, "available": 2}]}),
    ),
    methods=(
        PING,
        Method("get_stock", arguments(product_id=id_field(required=True)), StockSchema,
               "A product's stock; 0 for a product with no record"),
        Method("get_stocks", ProductIdsSchema, StockSchema,
               "The stock of each product in ids, in that order", many=True),
        Method("add_stock", StockChangeSchema, StockSchema, "Restock: on_hand += quantity"),
        Method("remove_stock", StockChangeSchema, StockSchema,
               "Write off: on_hand -= quantity, never below what is reserved"),
    ),
)
