# A Tocsin worker image: the package and its pinned dependencies.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams streams
COPY handlers handlers
COPY schemas schemas
COPY tocsin tocsin
RUN pip install --no-cache-dir .
ENV TOCSIN_DATA_DIR=/var/lib/tocsin TOCSIN_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["tocsin"]
CMD ["worker"]
