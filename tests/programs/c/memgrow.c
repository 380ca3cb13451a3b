// memory.grow: the heap grows in steps to tens of MiB; memory.size is printed after each step.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    size_t start = __builtin_wasm_memory_size(0);
    printf("initial pages: %s\n", start > 0 && start < 64 ? "small" : "unexpected");
    enum { STEPS = 12 };
    unsigned char *blocks[STEPS];
    size_t prev = start;
    for (int i = 0; i < STEPS; i++) {
        size_t sz = (size_t)(i + 1) * 512 * 1024; // 0.5 .. 6 MiB, 39 MiB total
        blocks[i] = malloc(sz);
        if (!blocks[i]) { printf("malloc %zu failed\n", sz); return 1; }
        memset(blocks[i], i + 1, sz);
        size_t now = __builtin_wasm_memory_size(0);
        printf("step %2d: malloc %7zu KiB, memory grew by %4zu pages (%s)\n", i, sz / 1024, now - prev, now >= prev ? "non-decreasing" : "SHRANK");
        prev = now;
    }
    int bad = 0;
    for (int i = 0; i < STEPS; i++) {
        size_t sz = (size_t)(i + 1) * 512 * 1024;
        for (size_t j = 0; j < sz; j += 4093) bad += blocks[i][j] != (unsigned char)(i + 1);
        bad += blocks[i][sz - 1] != (unsigned char)(i + 1);
    }
    printf("pattern check: %d bad\n", bad);
    size_t total = __builtin_wasm_memory_size(0);
    printf("total pages >= 39 MiB: %s\n", total * 65536 >= 39u * 1024 * 1024 ? "yes" : "no");
    // direct memory.grow: returns the old size; new pages are zero.
    size_t before = __builtin_wasm_memory_size(0);
    size_t old = __builtin_wasm_memory_grow(0, 3);
    printf("grow(3) returned old size: %s, size now +%zu\n", old == before ? "yes" : "no", __builtin_wasm_memory_size(0) - before);
    unsigned char *fresh = (unsigned char *)(before * 65536);
    int nz = 0;
    for (size_t j = 0; j < 3 * 65536; j++) nz += fresh[j] != 0;
    fresh[3 * 65536 - 1] = 0x5a;
    printf("fresh pages nonzero bytes: %d, last byte writable: %s\n", nz, fresh[3 * 65536 - 1] == 0x5a ? "yes" : "no");
    printf("grow(0) = old size: %s\n", __builtin_wasm_memory_grow(0, 0) == __builtin_wasm_memory_size(0) ? "yes" : "no");
    // beyond the 4 GiB limit of wasm32: must fail with -1 and leave the size unchanged
    size_t sz_before_fail = __builtin_wasm_memory_size(0);
    size_t r = __builtin_wasm_memory_grow(0, 65536);
    printf("grow(65536) = %ld, size unchanged: %s\n", (long)(intptr_t)r, __builtin_wasm_memory_size(0) == sz_before_fail ? "yes" : "no");
    for (int i = 0; i < STEPS; i++) free(blocks[i]);
    void *again = malloc(20 * 1024 * 1024);
    printf("malloc 20 MiB after free: %s\n", again ? "ok" : "failed");
    return 0;
}
