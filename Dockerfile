# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 copybot \
    && mkdir -p /state /config \
    && chown copybot:copybot /state
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
WORKDIR /state
VOLUME ["/state"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["bot"]
CMD ["run", "--config", "/config/bot.toml"]
