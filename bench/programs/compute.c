/* Benchmark: nested loops, recursion, floats and heap (like the brief's
 * comparison program). Prints a checksum so the work cannot be skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static double matmul(int n) {
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n), *c = calloc(n * n, sizeof(double));
    for (int i = 0; i < n * n; i++) { a[i] = (i % 7) * 0.5; b[i] = (i % 5) * 0.25; }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double aik = a[i * n + k];
            for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
    double s = 0;
    for (int i = 0; i < n * n; i++) s += c[i];
    free(a); free(b); free(c);
    return s;
}

static int sieve(int n) {
    char *p = calloc(n + 1, 1);
    int count = 0;
    for (int i = 2; i <= n; i++) {
        if (!p[i]) { count++; for (long j = (long)i * i; j <= n; j += i) p[j] = 1; }
    }
    free(p);
    return count;
}

static double nbody(int steps) {
    double x[5] = {0, 4.84, 8.34, 12.89, 15.37}, y[5] = {0, -1.16, 4.12, -15.11, -25.91};
    double vx[5] = {0, 0.606, -1.01, 1.08, 0.979}, vy[5] = {0, 2.81, 1.82, 0.868, 0.594}, m[5] = {39.4, 0.037, 0.011, 0.0017, 0.002};
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < 5; i++)
            for (int j = i + 1; j < 5; j++) {
                double dx = x[i] - x[j], dy = y[i] - y[j];
                double d2 = dx * dx + dy * dy + 0.01, mag = 0.01 / (d2 * sqrt(d2));
                vx[i] -= dx * m[j] * mag; vy[i] -= dy * m[j] * mag;
                vx[j] += dx * m[i] * mag; vy[j] += dy * m[i] * mag;
            }
        for (int i = 0; i < 5; i++) { x[i] += 0.01 * vx[i]; y[i] += 0.01 * vy[i]; }
    }
    return x[0] + y[1] + vx[2];
}

int main(void) {
    printf("fib(32) = %d\n", fib(32));
    printf("matmul(200) = %.6f\n", matmul(200));
    printf("sieve(8000000) = %d\n", sieve(8000000));
    printf("nbody = %.9f\n", nbody(2000000));
    return 0;
}
