/*
 * Host file calls Node.js does not expose but QEMU's file-posix driver relies on:
 * fallocate(2) (zero ranges, hole punching, preallocation) and lseek(2) with
 * SEEK_DATA/SEEK_HOLE (block status of sparse files), and the address of a buffer, which
 * JavaScript cannot see but the kernel's copy speed depends on (QEMU aligns its I/O
 * buffers with qemu_blockalign). Built as a Node-API addon so one
 * binary serves every Node version; src/storage/hostfs.ts loads it and falls back to
 * portable behaviour when it is missing.
 *
 * Every function returns a number: the result, or -errno on failure (no exceptions, so
 * the TypeScript side maps errors to ErrnoError in one place).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <unistd.h>

static int read_args(napi_env env, napi_callback_info info, size_t want, double *out) {
  napi_value argv[4];
  size_t argc = 4;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return -EINVAL;
  for (size_t i = 0; i < want; i++) {
    if (napi_get_value_double(env, argv[i], &out[i]) != napi_ok) return -EINVAL;
  }
  return 0;
}

static napi_value number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

/* fallocate(fd, mode, offset, length) -> 0 | -errno, retried on EINTR. */
static napi_value do_fallocate(napi_env env, napi_callback_info info) {
  double a[4];
  int err = read_args(env, info, 4, a);
  if (err) return number(env, err);
  int r;
  do {
    r = fallocate((int)a[0], (int)a[1], (off_t)a[2], (off_t)a[3]);
  } while (r < 0 && errno == EINTR);
  return number(env, r < 0 ? -errno : 0);
}

/* lseek(fd, offset, whence) -> new offset | -errno (ENXIO: no data/hole at or after offset). */
static napi_value do_lseek(napi_env env, napi_callback_info info) {
  double a[3];
  int err = read_args(env, info, 3, a);
  if (err) return number(env, err);
  off_t r = lseek((int)a[0], (off_t)a[1], (int)a[2]);
  return number(env, r < 0 ? -errno : (double)r);
}

/* pageOffset(typedArray) -> address of its first byte modulo 4096 | -errno. */
static napi_value do_page_offset(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  bool is_typed_array = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_typedarray(env, argv[0], &is_typed_array) != napi_ok || !is_typed_array)
    return number(env, -EINVAL);
  void *data = NULL;
  if (napi_get_typedarray_info(env, argv[0], NULL, NULL, &data, NULL, NULL) != napi_ok) return number(env, -EINVAL);
  return number(env, (double)((uintptr_t)data & 4095));
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT() {
  export_fn(env, exports, "fallocate", do_fallocate);
  export_fn(env, exports, "lseek", do_lseek);
  export_fn(env, exports, "pageOffset", do_page_offset);
  napi_value constants;
  napi_create_object(env, &constants);
  napi_set_named_property(env, constants, "SEEK_DATA", number(env, SEEK_DATA));
  napi_set_named_property(env, constants, "SEEK_HOLE", number(env, SEEK_HOLE));
  napi_set_named_property(env, exports, "constants", constants);
  return exports;
}
