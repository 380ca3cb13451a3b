// Exit codes: `exitcode exit N` calls exit(N), `exitcode return N` returns N from main,
// `exitcode flush N` writes buffered stdout and then exits (buffer must be flushed by exit).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: exitcode exit|return|flush N\n"); return 2; }
    int n = atoi(argv[2]);
    printf("mode %s code %d\n", argv[1], n);
    if (!strcmp(argv[1], "exit")) exit(n);
    if (!strcmp(argv[1], "flush")) { for (int i = 0; i < 1000; i++) printf("line %d\n", i); exit(n); }
    if (!strcmp(argv[1], "_exit")) { fflush(stdout); _Exit(n); }
    return n;
}
