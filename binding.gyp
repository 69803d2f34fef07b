{
  "targets": [
    {
      "target_name": "hostfs",
      "sources": ["native/hostfs.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
