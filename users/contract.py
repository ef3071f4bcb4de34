"""What the users service promises (common.contracts): the events it
publishes and the RPC methods it offers."""
from common.contracts import PING, Contract, Event, Method, arguments
from common.schemas import id_field
from users.schemas import (
    CredentialsSchema, RegistrationSchema, TokenSchema, UserIdsSchema, UserSchema)

CONTRACT = Contract(
    "users",
    events=(
        Event("user_registered", UserSchema, 1, "A customer registered",
              {"id": 12, "username": "ada", "email": "ada@example.com", "role": "customer"}),
    ),
    methods=(
        PING,
        Method("register", RegistrationSchema, UserSchema,
               "Create a customer account; emits user_registered"),
        Method("authenticate", CredentialsSchema, TokenSchema,
               "A signed access token for valid credentials"),
        Method("get_user", arguments(user_id=id_field(required=True)), UserSchema, "A user"),
        Method("get_users", UserIdsSchema, UserSchema,
               "The users among ids that exist, in id order", many=True),
    ),
)
