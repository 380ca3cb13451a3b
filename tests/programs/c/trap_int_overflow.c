// Trap: signed division overflow (INT_MIN / -1 with i32.div_s traps in Wasm).
#include <limits.h>
#include <stdio.h>
int main(int argc, char **argv) {
    (void)argv;
    volatile int num = INT_MIN, den = -argc; // argc == 1: den == -1
    printf("INT_MIN %% -1 = %d (rem does not trap)\n", num % den);
    printf("dividing INT_MIN by %d\n", den);
    fflush(stdout);
    volatile int q = num / den;
    printf("not reached %d\n", q);
    return 0;
}
