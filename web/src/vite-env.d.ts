/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** The payment service's gRPC-Web endpoint baked into the build. */
  readonly VITE_PAYMENT_ENDPOINT?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
