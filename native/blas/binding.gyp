{
  "targets": [
    {
      "target_name": "mft_blas",
      "sources": ["blas.c"],
      "cflags": ["-O2", "-std=c11", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["OS=='linux'", {"libraries": ["-ldl"]}]]
    }
  ]
}
