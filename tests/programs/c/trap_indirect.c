// Trap: call_indirect signature mismatch (a function pointer cast to another type).
#include <stdio.h>
__attribute__((noinline)) static int add_one(int x) { return x + 1; }
typedef double (*fp_dd)(double, double);
typedef int (*fp_i)(int);
int main(void) {
    volatile fp_i good = add_one;
    printf("good call: %d\n", good(41));
    volatile fp_dd bad = (fp_dd)(void *)add_one;
    fflush(stdout);
    printf("not reached %f\n", bad(1.0, 2.0));
    return 0;
}
