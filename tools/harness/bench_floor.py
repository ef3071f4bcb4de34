"""The floor the benchmark measures the shop against: stock Nameko, nothing of ours.

``FloorService`` answers ``GET /plain`` without doing anything, and
``GET /one-hop`` with one stock ``RpcProxy`` call to ``EchoService``, which
runs in its own process. Their throughput on this machine, in the same run, is
what each shop scenario is compared with.

``GET /shop-one-hop`` makes the same call with the shop's RPC instead
(``common.messaging.rpc.ServiceRpc`` to a ``common.messaging.entrypoints.rpc`` method in
``ShopEchoService``): the difference between the two is the transport's.
"""
from nameko.rpc import RpcProxy, rpc
from nameko.web.handlers import http

from common.messaging import entrypoints
from common.messaging.rpc import ServiceRpc


class EchoService:
    name = "bench_echo"

    @rpc
    def echo(self, value):
        return value


class ShopEchoService:
    name = "bench_shop_echo"

    @entrypoints.rpc
    def echo(self, value):
        return value


class FloorService:
    name = "bench_floor"

    echo = RpcProxy("bench_echo")
    shop_echo = ServiceRpc("bench_shop_echo")

    @http("GET", "/plain")
    def plain(self, request):
        return "ok"

    @http("GET", "/one-hop")
    def one_hop(self, request):
        return self.echo.echo("ok")

    @http("GET", "/shop-one-hop")
    def shop_one_hop(self, request):
        return self.shop_echo.echo("ok")
