# One image for every shop service; the command chooses the service:
#   docker run shop users.service   (users, products, orders, inventory, notifications, gateway)
#   docker run --entrypoint python shop -m tools.migrate
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # the nameko command imports pkg_resources and eventlet, which warn on every start
    PYTHONWARNINGS="ignore::Warning:nameko.cli.main,ignore::Warning:nameko.cli.commands" \
    WEB_SERVER_ADDRESS=0.0.0.0:8000

WORKDIR /app

# dependencies first, pinned, so that a code change does not reinstall them
COPY pyproject.toml constraints.txt ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > requirements.txt \
    && pip install -c constraints.txt -r requirements.txt

COPY common ./common
COPY users ./users
COPY products ./products
COPY orders ./orders
COPY inventory ./inventory
COPY notifications ./notifications
COPY gateway ./gateway
COPY tools ./tools
COPY config.yaml ./
# which commit the image holds, for the services to report (common/build.py):
#   docker build --build-arg SHOP_REVISION=$(git rev-parse --short=12 HEAD) .
ARG SHOP_REVISION=unknown
ENV SHOP_REVISION=$SHOP_REVISION
RUN pip install --no-deps -c constraints.txt . \
    && useradd --create-home --uid 10001 shop

USER shop
EXPOSE 8000
ENTRYPOINT ["nameko", "run", "--config", "config.yaml"]
CMD ["gateway.service"]
