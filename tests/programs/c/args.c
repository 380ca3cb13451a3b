// Command-line arguments. argv[0] differs between engines (module path vs. binary path), so
// only its presence is printed.
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    printf("argc = %d\n", argc);
    printf("argv[0] present: %s\n", argc > 0 && argv[0] != NULL ? "yes" : "no");
    for (int i = 1; i < argc; i++) printf("argv[%d] = [%s] (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is NULL: %s\n", argv[argc] == NULL ? "yes" : "no");
    return 0;
}
