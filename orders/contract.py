"""What the orders service promises (common.contracts): the events it
publishes and the RPC methods it offers."""
from common.contracts import PING, Contract, Event, Method, arguments, page_of
from common.schemas import id_field
from orders.schemas import (
    ListAllOrdersSchema, ListOrdersSchema, OrderCancelledSchema, OrderPaidSchema,
    OrderRejectedSchema, OrderSchema, OrdersExpiredSchema, PlaceOrderSchema,
    StockReservationRequestedSchema, idempotency_key_field)


class PlaceOrderArguments(PlaceOrderSchema):
    idempotency_key = idempotency_key_field()


# pay_order and cancel_order
ORDER_CHANGE = arguments(order_id=id_field(required=True), user_id=id_field(required=True),
                         idempotency_key=idempotency_key_field())

CONTRACT = Contract(
    "orders",
    events=(
        Event("stock_reservation_requested", StockReservationRequestedSchema, 1,
              "An order was placed: inventory is asked to reserve its stock, all or nothing",
              {"order_id": 42, "items": [{"product_id": 7, "quantity": 2}]}),
        Event("order_paid", OrderPaidSchema, 2,
              "An order was paid: its reserved stock is sold, its customer gets a receipt",
              {"order_id": 42, "user_id": 12, "total": "49.80", "payment_id": "pay_5f2c9e",
               "items": [{"product_id": 7, "name": "Teapot", "quantity": 2,
                          "unit_price": "24.90"}]}),
        Event("order_rejected", OrderRejectedSchema, 1,
              "Inventory could not reserve an order's stock: the order is rejected",
              {"order_id": 42, "user_id": 12, "reason": "insufficient_stock",
               "short": [{"product_id": 7, "name": "Teapot", "requested": 2,
                          "available": 1}]}),
        Event("order_cancelled", OrderCancelledSchema, 2,
              "An order was cancelled: its reserved stock returns",
              {"order_id": 42, "user_id": 12, "reason": "cancelled"}),
        Event("orders_expired", OrdersExpiredSchema, 2,
              "Orders went unpaid past their reservation's time: their stock returns",
              {"order_ids": [42, 43],
               "orders": [{"order_id": 42, "user_id": 12}, {"order_id": 43, "user_id": 15}]}),
    ),
    methods=(
        PING,
        Method("place_order", PlaceOrderArguments, OrderSchema,
               "Store a pending order priced from the catalogue; emits "
               "stock_reservation_requested", keyed=True),
        Method("get_order", arguments(order_id=id_field(required=True),
                                      user_id=id_field(load_default=None, allow_none=True)),
               OrderSchema, "An order; with user_id, only if it is that user's"),
        Method("list_orders", ListOrdersSchema, page_of(OrderSchema),
               "A page of one user's orders, newest first"),
        Method("list_all_orders", ListAllOrdersSchema, page_of(OrderSchema),
               "A page of every user's orders, newest first"),
        Method("pay_order", ORDER_CHANGE, OrderSchema,
               "Charge an order awaiting payment; emits order_paid", keyed=True),
        Method("cancel_order", ORDER_CHANGE, OrderSchema,
               "Cancel a pending or unpaid order; emits order_cancelled", keyed=True),
    ),
)
