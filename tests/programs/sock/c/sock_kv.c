// A line-based key-value server on a pre-opened listening socket (fd 3:
// `--tcplisten` / `-S tcplisten=`), written against wasi-libc's accept4,
// recv, send, shutdown and poll.
//
// Requests are lines "SEQ CMD ARGS": "SEQ SET K V" -> "SEQ OK", "SEQ GET K"
// -> "SEQ VALUE V" or "SEQ NONE", "SEQ ECHO TEXT" -> "SEQ TEXT", "SEQ QUIT"
// -> "SEQ BYE", after which the server shuts down its sending side and
// closes the connection once the client has closed its own.
//
// Usage: sock_kv [N [JOURNAL]]: exit 0 after N connections have ended
// (default: never), printing how many connections and requests were served.
// With JOURNAL (a file in a preopened directory, which is then fd 3 and the
// listener fd 4), every SET is appended to it as a line "K V" before it is
// answered: the server's files, for the migration tests.
//
// Every connection is non-blocking (accept4 with SOCK_NONBLOCK), so a
// readiness report that turns out to be spurious only costs an EAGAIN. The
// poll has a 100 ms tick, so a checkpoint request (SIGUSR1) is served while
// the server is idle.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int LISTEN_FD = 3;
static int journal = -1;
#define MAX_CONNS 64
#define BUF 4096
#define MAX_KEYS 1024

struct conn {
    int fd;
    size_t len;
    int quitting;
    char buf[BUF];
};

static struct conn conns[MAX_CONNS];
static int nconns;
static char *keys[MAX_KEYS], *vals[MAX_KEYS];
static int nkeys;
static long requests, ended, resets;

static void die(const char *what) {
    printf("error: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, 0);
        if (w < 0) {
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                poll(&pf, 1, 1000);
                continue;
            }
            return; // the client went away; its close is seen by recv
        }
        p += w;
        n -= (size_t)w;
    }
}

static const char *get(const char *k) {
    for (int i = 0; i < nkeys; i++)
        if (strcmp(keys[i], k) == 0) return vals[i];
    return NULL;
}

static void set(const char *k, const char *v) {
    for (int i = 0; i < nkeys; i++)
        if (strcmp(keys[i], k) == 0) {
            free(vals[i]);
            vals[i] = strdup(v);
            return;
        }
    if (nkeys < MAX_KEYS) {
        keys[nkeys] = strdup(k);
        vals[nkeys] = strdup(v);
        nkeys++;
    }
}

// Answers one request line (without its newline).
static void answer(struct conn *c, char *line) {
    char out[BUF + 64];
    char *sp = strchr(line, ' ');
    if (!sp) {
        snprintf(out, sizeof out, "? ERROR no command\n");
    } else {
        *sp = 0;
        const char *seq = line;
        char *cmd = sp + 1;
        char *arg = strchr(cmd, ' ');
        if (arg) *arg++ = 0;
        requests++;
        if (strcmp(cmd, "SET") == 0 && arg && strchr(arg, ' ')) {
            char *v = strchr(arg, ' ');
            *v++ = 0;
            set(arg, v);
            if (journal >= 0) {
                char j[BUF + 64];
                int n = snprintf(j, sizeof j, "%s %s\n", arg, v);
                if (write(journal, j, (size_t)n) != n) die("journal");
            }
            snprintf(out, sizeof out, "%s OK\n", seq);
        } else if (strcmp(cmd, "GET") == 0 && arg) {
            const char *v = get(arg);
            if (v)
                snprintf(out, sizeof out, "%s VALUE %s\n", seq, v);
            else
                snprintf(out, sizeof out, "%s NONE\n", seq);
        } else if (strcmp(cmd, "ECHO") == 0) {
            snprintf(out, sizeof out, "%s %s\n", seq, arg ? arg : "");
        } else if (strcmp(cmd, "QUIT") == 0) {
            snprintf(out, sizeof out, "%s BYE\n", seq);
            c->quitting = 1;
        } else {
            snprintf(out, sizeof out, "%s ERROR unknown command %s\n", seq, cmd);
        }
    }
    send_all(c->fd, out, strlen(out));
    if (c->quitting && shutdown(c->fd, SHUT_WR) != 0) die("shutdown");
}

static void drop_conn(int i) {
    close(conns[i].fd);
    conns[i] = conns[--nconns];
    ended++;
}

int main(int argc, char **argv) {
    long limit = argc > 1 ? atol(argv[1]) : -1;
    if (argc > 2) {
        journal = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (journal < 0) die("open the journal");
        LISTEN_FD = 4;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready\n");
    while (limit < 0 || ended < limit) {
        struct pollfd pfds[MAX_CONNS + 1];
        pfds[0].fd = LISTEN_FD;
        pfds[0].events = POLLIN;
        for (int i = 0; i < nconns; i++) {
            pfds[i + 1].fd = conns[i].fd;
            pfds[i + 1].events = POLLIN;
        }
        int n = poll(pfds, (nfds_t)nconns + 1, 100);
        if (n < 0) die("poll");
        if (n == 0) continue;
        // Connections first (indices shift when one is dropped: walk down).
        for (int i = nconns - 1; i >= 0; i--) {
            if (!pfds[i + 1].revents) continue;
            struct conn *c = &conns[i];
            ssize_t r = recv(c->fd, c->buf + c->len, BUF - 1 - c->len, 0);
            if (r < 0) {
                if (errno == EAGAIN) continue;
                if (errno == ECONNRESET) resets++;
                drop_conn(i); // reset by the client
                continue;
            }
            if (r == 0) {
                drop_conn(i);
                continue;
            }
            c->len += (size_t)r;
            char *start = c->buf, *nl;
            while ((nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
                *nl = 0;
                answer(c, start);
                start = nl + 1;
            }
            c->len -= (size_t)(start - c->buf);
            memmove(c->buf, start, c->len);
        }
        if (pfds[0].revents & POLLIN) {
            struct sockaddr_storage sa;
            socklen_t len = sizeof sa;
            int fd = accept4(LISTEN_FD, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK);
            if (fd < 0) {
                if (errno != EAGAIN) die("accept");
            } else if (nconns == MAX_CONNS) {
                close(fd);
            } else {
                conns[nconns].fd = fd;
                conns[nconns].len = 0;
                conns[nconns].quitting = 0;
                nconns++;
            }
        }
    }
    if (resets) printf("connections reset by their client: %ld\n", resets);
    printf("served %ld connections, %ld requests, %d keys\n", ended, requests, nkeys);
    return 0;
}
