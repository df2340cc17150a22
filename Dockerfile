FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pathwatch ./pathwatch
COPY server ./server
COPY collector ./collector
COPY web ./web
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system pathwatch
USER pathwatch
EXPOSE 6180 4318 4317
CMD ["pathwatch", "serve", "--host", "0.0.0.0"]
