// Trap: integer division by zero (i32.div_s with a volatile zero divisor).
#include <stdio.h>
int main(int argc, char **argv) {
    (void)argv;
    volatile int divisor = argc - argc;
    printf("dividing by %d\n", divisor);
    fflush(stdout);
    volatile int q = 100 / divisor;
    printf("not reached %d\n", q);
    return 0;
}
