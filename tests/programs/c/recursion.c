// Recursion: fibonacci, Ackermann, mutual recursion, a deep (but bounded) chain.
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static unsigned fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
__attribute__((noinline)) static unsigned ack(unsigned m, unsigned n) {
    if (m == 0) return n + 1;
    if (n == 0) return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}
__attribute__((noinline)) static int is_odd(unsigned n);
__attribute__((noinline)) static int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }
__attribute__((noinline)) static int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }
// Non-tail recursion with a frame that must stay live.
__attribute__((noinline)) static long deep(int n, volatile long *sink) {
    volatile long local[4] = {n, n * 2, n * 3, n * 4};
    if (n == 0) return 0;
    long r = deep(n - 1, sink) + local[0] + local[3] - local[1] - local[2];
    *sink += r & 7;
    return r + 1;
}
// Recursive permutation counter with an array argument.
__attribute__((noinline)) static int queens(int row, int n, int *cols) {
    if (row == n) return 1;
    int count = 0;
    for (int c = 0; c < n; c++) {
        int ok = 1;
        for (int r = 0; r < row; r++)
            if (cols[r] == c || abs(cols[r] - c) == row - r) { ok = 0; break; }
        if (ok) { cols[row] = c; count += queens(row + 1, n, cols); }
    }
    return count;
}

int main(void) {
    for (unsigned i = 0; i <= 25; i += 5) printf("fib(%u) = %u\n", i, fib(i));
    for (unsigned m = 0; m <= 2; m++)
        for (unsigned n = 0; n <= 4; n++) printf("ack(%u,%u) = %u\n", m, n, ack(m, n));
    printf("ack(3,5) = %u\n", ack(3, 5));
    printf("is_even(10001) = %d, is_odd(7777) = %d\n", is_even(10001), is_odd(7777));
    volatile long sink = 0;
    printf("deep(5000) = %ld sink %ld\n", deep(5000, &sink), (long)sink);
    int cols[8];
    printf("queens(8) = %d\n", queens(0, 8, cols));
    return 0;
}
