"""What the notifications service promises (common.contracts): it publishes
no event; it answers its health check over RPC."""
from common.contracts import PING, Contract

CONTRACT = Contract("notifications", methods=(PING,))
