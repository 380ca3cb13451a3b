// Trap: call stack exhausted by unbounded (non-tail) recursion. The frame lives on the Wasm
// value stack only (no address-taken locals), so the engine's stack limit is hit, not the
// shadow stack in linear memory.
#include <stdio.h>
__attribute__((noinline)) static unsigned long long down(unsigned long long n, unsigned long long a, unsigned long long b) {
    if (n == 0xffffffffffffffffull) return a; // never true in practice
    unsigned long long r = down(n + 1, a * 3 + b, b ^ n);
    // Not a tail call, and not an accumulator an optimiser could turn into a loop
    // (LLVM's tail-recursion elimination handles `return f(..) + x`).
    return (r ^ (r >> 7)) * (a | 1) + n;
}
int main(int argc, char **argv) {
    (void)argv;
    printf("recursing forever\n");
    fflush(stdout);
    printf("not reached %llu\n", down((unsigned long long)argc, 1, 2));
    return 0;
}
