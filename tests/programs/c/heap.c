// Heap: malloc/free/realloc of many sizes, a linked list, qsort.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng = 12345;
static uint32_t next(void) { rng = rng * 1103515245u + 12345u; return rng >> 8; }

struct node { int value; struct node *next; };

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    // 1. many sizes, patterns checked after other allocations happened
    enum { SLOTS = 512 };
    static unsigned char *slot[SLOTS];
    static size_t size[SLOTS];
    unsigned long long sum = 0;
    int bad = 0;
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < SLOTS; i++) {
            int k = next() % SLOTS;
            if (slot[k]) {
                for (size_t j = 0; j < size[k]; j++)
                    if (slot[k][j] != (unsigned char)(k + j)) bad++;
                if (next() % 3 == 0) {
                    size_t ns = next() % 5000;
                    unsigned char *p = realloc(slot[k], ns ? ns : 1);
                    if (!p) { printf("realloc failed\n"); return 1; }
                    for (size_t j = size[k]; j < ns; j++) p[j] = (unsigned char)(k + j);
                    slot[k] = p; size[k] = ns;
                } else {
                    free(slot[k]); slot[k] = NULL; size[k] = 0;
                }
            } else {
                size_t s = (next() % 7 == 0) ? 4096 + next() % 70000 : next() % 300;
                slot[k] = malloc(s ? s : 1);
                if (!slot[k]) { printf("malloc failed\n"); return 1; }
                size[k] = s;
                for (size_t j = 0; j < s; j++) slot[k][j] = (unsigned char)(k + j);
                sum += s;
            }
        }
    }
    int live = 0;
    for (int i = 0; i < SLOTS; i++) if (slot[i]) { live++; free(slot[i]); }
    printf("alloc bytes total %llu, live at end %d, corrupt bytes %d\n", sum, live, bad);
    void *z = calloc(1000, 4);
    int nonzero = 0;
    for (int i = 0; i < 4000; i++) nonzero += ((unsigned char *)z)[i] != 0;
    printf("calloc nonzero bytes %d\n", nonzero);
    free(z);

    // 2. linked list: build, reverse, sum, remove odd values
    struct node *head = NULL;
    for (int i = 1; i <= 10000; i++) {
        struct node *n = malloc(sizeof *n);
        n->value = i; n->next = head; head = n;
    }
    struct node *rev = NULL;
    while (head) { struct node *n = head; head = n->next; n->next = rev; rev = n; }
    printf("list first %d", rev->value);
    long total = 0; int count = 0;
    for (struct node **pp = &rev; *pp;) {
        if ((*pp)->value % 2) { struct node *d = *pp; *pp = d->next; free(d); }
        else { total += (*pp)->value; count++; pp = &(*pp)->next; }
    }
    printf(", evens %d sum %ld\n", count, total);
    while (rev) { struct node *n = rev; rev = n->next; free(n); }

    // 3. qsort ints and strings
    enum { M = 20000 };
    int *a = malloc(M * sizeof *a);
    for (int i = 0; i < M; i++) a[i] = (int)(next() % 100000) - 50000;
    qsort(a, M, sizeof *a, cmp_int);
    int sorted = 1;
    unsigned long long h = 0;
    for (int i = 0; i < M; i++) { if (i && a[i - 1] > a[i]) sorted = 0; h = h * 31 + (unsigned)a[i]; }
    printf("qsort ints: sorted %s min %d median %d max %d hash %llx\n", sorted ? "yes" : "no", a[0], a[M / 2], a[M - 1], h);
    free(a);
    static const char *words[] = {"pear", "apple", "fig", "banana", "cherry", "date", "elderberry", "grape", "kiwi", "lemon", "apple2", "Zebra"};
    enum { W = sizeof words / sizeof words[0] };
    char **s = malloc(W * sizeof *s);
    for (int i = 0; i < W; i++) s[i] = strdup(words[i]);
    qsort(s, W, sizeof *s, cmp_str);
    printf("qsort strings:");
    for (int i = 0; i < W; i++) { printf(" %s", s[i]); free(s[i]); }
    printf("\n");
    free(s);
    return 0;
}
