# mft serve in a container: an OpenAI-compatible API on port 8080.
#   docker build -t mft .
#   docker run -p 8080:8080 -v /path/to/model:/model mft --model /model
# The build stage compiles TypeScript (a dev dependency); the image keeps only runtime packages.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: `prepare` would rebuild with the dev dependencies left out here.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY checkpoints/base ./checkpoints/base
EXPOSE 8080
ENTRYPOINT ["node", "bin/mft.js", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["--model", "checkpoints/base/tinystories-260k"]
