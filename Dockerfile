# fashionrec's service, for docker-compose.yml's replicas (`docker compose --profile cluster`).
FROM python:3.11-slim
WORKDIR /app
# torch first and pinned, as the Makefile installs it
RUN pip install --no-cache-dir torch==2.13.0 torchvision==0.28.0
COPY pyproject.toml README.md ./
COPY engine engine
COPY ingest ingest
COPY cli cli
COPY serve serve
RUN pip install --no-cache-dir .
ENV FASHIONREC_HOME=/home/fashionrec
EXPOSE 8000
ENTRYPOINT ["fashionrec"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
