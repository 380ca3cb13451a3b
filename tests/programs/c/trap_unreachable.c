// Trap: `unreachable` (__builtin_trap).
#include <stdio.h>
__attribute__((noinline)) static void fail(int depth) {
    if (depth == 0) __builtin_trap();
    fail(depth - 1);
    printf("unwound %d\n", depth);
}
int main(void) {
    printf("about to execute unreachable\n");
    fflush(stdout);
    fail(3);
    return 0;
}
