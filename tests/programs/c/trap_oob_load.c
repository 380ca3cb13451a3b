// Trap: out-of-bounds load just past the end of memory (memory.size * 64 KiB), with a static offset.
#include <stdint.h>
#include <stdio.h>
int main(void) {
    uintptr_t end = __builtin_wasm_memory_size(0) * 65536;
    volatile uint8_t *last = (volatile uint8_t *)(end - 1);
    printf("last byte readable: %d\n", *last);
    fflush(stdout);
    volatile uint64_t *p = (volatile uint64_t *)(end - 4); // 8-byte load straddling the end
    printf("value %llu\n", (unsigned long long)*p);
    return 0;
}
