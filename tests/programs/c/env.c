// Environment variables: selected ones, the full (sorted) list, and that host variables do not leak.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
extern char **environ;
static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
int main(void) {
    const char *names[] = {"FOO", "EMPTY", "WITH_EQUALS", "UNICODE", "HOME", "PATH", "UNSET_VAR"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v) printf("%s = [%s]\n", names[i], v);
        else printf("%s is unset\n", names[i]);
    }
    int n = 0;
    while (environ && environ[n]) n++;
    char **copy = malloc((n + 1) * sizeof *copy);
    for (int i = 0; i < n; i++) copy[i] = environ[i];
    qsort(copy, n, sizeof *copy, cmp);
    printf("environ has %d entries:\n", n);
    for (int i = 0; i < n; i++) printf("  %s\n", copy[i]);
    setenv("FOO", "changed", 1);
    printf("after setenv FOO = [%s]\n", getenv("FOO"));
    return 0;
}
