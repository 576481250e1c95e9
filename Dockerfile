# kpexporter image: small, non-root, no shell needed at run time.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kpexporter ./kpexporter
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
USER 65534:65534
EXPOSE 19249
ENTRYPOINT ["kpexporter"]
CMD ["serve"]
