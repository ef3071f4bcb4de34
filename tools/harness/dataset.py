"""Products and orders written straight into the services' databases,
consistent with each other, as if they had been made through the shop: for
the benchmark's data-scale and expiry runs and the expiry tests, which need
more rows than the API makes in reasonable time.

Products get a stock record in inventory; no event announces them, so the
orders service fetches one from the products service the first time it is
ordered, as it does for any product it has not heard of.

Each order has one line of one unit. Its reservation has the status that
order status implies (awaiting_payment: reserved, paid: committed, expired
or cancelled: released); reserved units are added to both ``on_hand`` and
``reserved`` of the product's stock, as a restock followed by a reservation
would, so available stock does not change.
"""
from datetime import timedelta
from itertools import cycle, islice

from sqlalchemy import insert, update

from common.data.db import utcnow
from inventory import domain as inventory_domain
from inventory.models import Reservation, ReservationLine, Stock
from orders import domain as orders_domain
from orders.models import Order, OrderLine
from products.models import CatalogueSize, Product

RESERVATION_OF = {
    orders_domain.AWAITING_PAYMENT: inventory_domain.RESERVED,
    orders_domain.PAID: inventory_domain.COMMITTED,
    orders_domain.EXPIRED: inventory_domain.RELEASED,
    orders_domain.CANCELLED: inventory_domain.RELEASED,
}
CHUNK = 5_000

# Made-up products, worded as a shop's are: "<brand> <noun> <model>", with an
# adjective and a material in the description and a category per kind of
# thing. As in a real catalogue, the vocabulary grows with the range (Heaps'
# law): a noun is in 1 product in 120, whatever the size, but a brand makes
# BRAND_SIZE products and a model MODEL_SIZE, so a larger catalogue has more
# brands and models rather than more of each.
NOUNS_BY_CATEGORY = {
    "kitchen": ("kettle", "teapot", "grinder", "whisk", "ladle", "skillet"),
    "coffee": ("moka", "dripper", "tamper", "carafe", "frother", "roaster"),
    "tableware": ("mug", "plate", "bowl", "saucer", "tumbler", "platter"),
    "garden": ("rake", "trowel", "planter", "hose", "shears", "wheelbarrow"),
    "tools": ("hammer", "wrench", "chisel", "clamp", "screwdriver", "spanner"),
    "lighting": ("lamp", "lantern", "bulb", "sconce", "torch", "candle"),
    "furniture": ("stool", "bench", "shelf", "desk", "wardrobe", "armchair"),
    "bedding": ("pillow", "duvet", "blanket", "quilt", "mattress", "throw"),
    "bath": ("towel", "sponge", "mirror", "bathrobe", "soapdish", "bathmat"),
    "stationery": ("notebook", "pencil", "folder", "stapler", "envelope", "ruler"),
    "toys": ("puzzle", "kite", "yoyo", "marble", "spinner", "rattle"),
    "sports": ("racket", "helmet", "dumbbell", "skipping", "kettlebell", "frisbee"),
    "outdoor": ("tent", "hammock", "compass", "canteen", "rucksack", "groundsheet"),
    "audio": ("speaker", "headphones", "turntable", "amplifier", "earbuds", "soundbar"),
    "travel": ("suitcase", "passport", "luggage", "washbag", "neckpillow", "organiser"),
    "pets": ("leash", "collar", "kennel", "birdcage", "aquarium", "scratcher"),
    "clothing": ("scarf", "glove", "beanie", "sock", "jumper", "raincoat"),
    "cleaning": ("broom", "mop", "duster", "bucket", "squeegee", "scrubber"),
    "storage": ("basket", "crate", "jar", "canister", "hamper", "caddy"),
    "decor": ("vase", "frame", "cushion", "rug", "clock", "tapestry"),
}
NOUNS = [(noun, category) for category, nouns in NOUNS_BY_CATEGORY.items() for noun in nouns]
ADJECTIVES = ("classic", "compact", "deluxe", "elegant", "everyday", "folding", "handmade",
              "light", "modern", "nordic", "pocket", "rustic", "simple", "sturdy", "travel",
              "vintage")
MATERIALS = ("ceramic", "steel", "oak", "bamboo", "glass", "cotton", "wool", "linen",
             "copper", "brass", "walnut", "cork", "leather", "porcelain", "enamel", "iron")
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "qu", "fa",
             "di", "go", "he", "ju")
BRAND_SIZE = 200
MODEL_SIZE = 20


def made_up_word(number, syllables):
    """A pronounceable word for ``number``, a different one for each."""
    return "".join(SYLLABLES[number // len(SYLLABLES) ** place % len(SYLLABLES)]
                   for place in range(syllables))


def made_up_product(number):
    """The fields of made-up product ``number`` (0, 1, ...): always the same."""
    noun, category = NOUNS[number % len(NOUNS)]
    brand = made_up_word(number // BRAND_SIZE, 3).capitalize()
    model = made_up_word(number // MODEL_SIZE, 3) + str(number // MODEL_SIZE % 10)
    return {
        "name": f"{brand} {noun} {model}",
        "description": (f"{ADJECTIVES[number % len(ADJECTIVES)].capitalize()} design, "
                        f"{MATERIALS[number // len(ADJECTIVES) % len(MATERIALS)]}."),
        "category": category,
        "price": f"{1 + number % 50}.90",
    }


def insert_products(products_engine, inventory_engine, count, on_hand, first=0):
    """Insert ``count`` products, each with ``on_hand`` units, made up from
    number ``first`` on (:func:`made_up_product`); their ids."""
    now = utcnow()
    ids = []
    with products_engine.begin() as products_db, inventory_engine.begin() as inventory_db:
        for start in range(0, count, CHUNK):
            new_ids = products_db.execute(
                insert(Product).returning(Product.id, sort_by_parameter_order=True),
                [{**made_up_product(number), "created_at": now, "updated_at": now}
                 for number in range(first + start, first + min(start + CHUNK, count))]
            ).scalars().all()
            inventory_db.execute(insert(Stock), [
                {"product_id": product_id, "on_hand": on_hand, "reserved": 0}
                for product_id in new_ids])
            ids.extend(new_ids)
        products_db.execute(update(CatalogueSize).values(
            products=CatalogueSize.products + len(ids)))
    return ids


def insert_orders(orders_engine, inventory_engine, count, *, status, products, user_ids,
                  expires_at=None):
    """Insert ``count`` orders of ``status``, one unit each of a product from
    ``products`` (``{id: (name, price)}``) in turn, placed by ``user_ids`` in
    turn; with their reservations and the stock those hold. Returns their ids."""
    reservation_status = RESERVATION_OF[status]
    now = utcnow()
    placed_at = now - timedelta(minutes=1)
    picks = list(islice(cycle(products.items()), count))
    users = list(islice(cycle(user_ids), count))
    ids = []
    with orders_engine.begin() as orders_db, inventory_engine.begin() as inventory_db:
        for start in range(0, count, CHUNK):
            chunk = range(start, min(start + CHUNK, count))
            new_ids = orders_db.execute(
                insert(Order).returning(Order.id, sort_by_parameter_order=True),
                [{"user_id": users[i], "status": status, "total": picks[i][1][1],
                  "created_at": placed_at, "updated_at": now, "expires_at": expires_at,
                  "version": 2} for i in chunk]).scalars().all()
            orders_db.execute(insert(OrderLine), [
                {"order_id": order_id, "position": 0, "product_id": picks[i][0],
                 "name": picks[i][1][0], "quantity": 1, "unit_price": picks[i][1][1]}
                for order_id, i in zip(new_ids, chunk)])
            inventory_db.execute(insert(Reservation), [
                {"order_id": order_id, "status": reservation_status,
                 "created_at": placed_at, "updated_at": now} for order_id in new_ids])
            inventory_db.execute(insert(ReservationLine), [
                {"order_id": order_id, "product_id": picks[i][0], "quantity": 1}
                for order_id, i in zip(new_ids, chunk)])
            ids.extend(new_ids)
        if reservation_status == inventory_domain.RESERVED:
            held = {}
            for product_id, _ in picks:
                held[product_id] = held.get(product_id, 0) + 1
            for product_id, units in held.items():
                changed = inventory_db.execute(
                    update(Stock).where(Stock.product_id == product_id)
                    .values(on_hand=Stock.on_hand + units, reserved=Stock.reserved + units))
                if changed.rowcount != 1:
                    raise ValueError(f"product {product_id} has no stock record in inventory")
    return ids
