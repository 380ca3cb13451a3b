// Clocks: only properties are printed (no wall-clock values).
#include <stdio.h>
#include <time.h>
#include <sys/time.h>

int main(void) {
    struct timespec prev, now, res;
    int ok = 1;
    clock_gettime(CLOCK_MONOTONIC, &prev);
    for (int i = 0; i < 2000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec < prev.tv_sec || (now.tv_sec == prev.tv_sec && now.tv_nsec < prev.tv_nsec)) ok = 0;
        if (now.tv_nsec < 0 || now.tv_nsec >= 1000000000) ok = 0;
        prev = now;
    }
    printf("monotonic non-decreasing: %s\n", ok ? "yes" : "no");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct timespec req = {0, 20 * 1000 * 1000};
    int sr = nanosleep(&req, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long elapsed = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    printf("nanosleep(20ms) returned %d, elapsed >= 20ms: %s, < 5s: %s\n", sr, elapsed >= 20000000LL ? "yes" : "no", elapsed < 5000000000LL ? "yes" : "no");
    clock_gettime(CLOCK_REALTIME, &now);
    printf("realtime after 2020-01-01: %s, before 2200: %s\n", now.tv_sec > 1577836800 ? "yes" : "no", now.tv_sec < 7258118400LL ? "yes" : "no");
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long diff = (long long)tv.tv_sec - (long long)now.tv_sec;
    printf("gettimeofday agrees with CLOCK_REALTIME (+-2s): %s\n", diff >= -2 && diff <= 2 ? "yes" : "no");
    time_t t = time(NULL);
    printf("time() plausible: %s\n", t > 1577836800 ? "yes" : "no");
    int r1 = clock_getres(CLOCK_MONOTONIC, &res);
    printf("clock_getres(MONOTONIC) = %d, resolution > 0 and <= 1ms: %s\n", r1, (res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000) ? "yes" : "no");
    int r2 = clock_getres(CLOCK_REALTIME, &res);
    printf("clock_getres(REALTIME) = %d, resolution > 0 and <= 1ms: %s\n", r2, (res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000) ? "yes" : "no");
    return 0;
}
