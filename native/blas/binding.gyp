{
  "targets": [
    {
      "target_name": "mft_blas",
      "sources": ["blas.c", "pool.c", "transpose.c", "elementwise.c"],
      "cflags": ["-O3", "-std=c11", "-pthread", "-fno-trapping-math", "-ffp-contract=off"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["OS=='linux'", {"libraries": ["-ldl"]}]]
    }
  ]
}
