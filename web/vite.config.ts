import { defineConfig } from "vitest/config";

export default defineConfig({
  // Relative asset URLs, so dist/ can be served from any path.
  base: "./",
  server: { host: "127.0.0.1", port: 5173 },
  preview: { host: "127.0.0.1", port: 4173 },
  build: { target: "es2022" },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
