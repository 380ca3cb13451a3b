// Prints what the raw WASI preview1 calls answer on a pre-opened listening
// socket (fd 3) and on a connection accepted from it: errnos, fdstat,
// filestat, poll events. Compared line by line with wasmtime 36
// (`-S preview2=n -S tcplisten=...`).
//
// The driver connects when the probe prints "waiting", sends "ping\n" when
// it prints "accepted", then reads until the probe shuts down its side, and
// closes.
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

#define L 3

static void fdstat(const char *what, int fd) {
    __wasi_fdstat_t st;
    __wasi_errno_t e = __wasi_fd_fdstat_get(fd, &st);
    printf("%s fdstat: errno %d filetype %d flags %d base 0x%llx inh 0x%llx\n", what, e,
           e ? -1 : st.fs_filetype, e ? -1 : st.fs_flags,
           e ? 0ULL : (unsigned long long)st.fs_rights_base,
           e ? 0ULL : (unsigned long long)st.fs_rights_inheriting);
}

static void filestat(const char *what, int fd) {
    __wasi_filestat_t st;
    memset(&st, 0x55, sizeof st);
    __wasi_errno_t e = __wasi_fd_filestat_get(fd, &st);
    printf("%s filestat: errno %d filetype %d size %llu nlink %llu\n", what, e,
           e ? -1 : st.filetype, e ? 0ULL : (unsigned long long)st.size,
           e ? 0ULL : (unsigned long long)st.nlink);
}

// Polls one fd for reading (or writing) with a timeout; prints the events.
static void poll1(const char *what, int fd, int write, unsigned long long timeout_ms) {
    __wasi_subscription_t s[2];
    memset(s, 0, sizeof s);
    s[0].userdata = 11;
    s[0].u.tag = write ? __WASI_EVENTTYPE_FD_WRITE : __WASI_EVENTTYPE_FD_READ;
    if (write)
        s[0].u.u.fd_write.file_descriptor = fd;
    else
        s[0].u.u.fd_read.file_descriptor = fd;
    s[1].userdata = 22;
    s[1].u.tag = __WASI_EVENTTYPE_CLOCK;
    s[1].u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    s[1].u.u.clock.timeout = timeout_ms * 1000000ULL;
    __wasi_event_t ev[2];
    __wasi_size_t n = 0;
    __wasi_errno_t e = __wasi_poll_oneoff(s, ev, 2, &n);
    printf("%s poll: errno %d events %d", what, e, (int)n);
    for (__wasi_size_t i = 0; i < n && !e; i++) {
        // nbytes of a read event is "at least 1": print whether it is.
        printf(" [ud %llu type %d error %d nbytes>0 %d flags %d]", (unsigned long long)ev[i].userdata,
               ev[i].type, ev[i].error, ev[i].fd_readwrite.nbytes > 0, ev[i].fd_readwrite.flags);
    }
    printf("\n");
}

static void recv_(const char *what, int fd, size_t len, __wasi_riflags_t flags) {
    char buf[64];
    memset(buf, 0, sizeof buf);
    __wasi_iovec_t iov = {.buf = (uint8_t *)buf, .buf_len = len};
    __wasi_size_t n = 0;
    __wasi_roflags_t ro = 0x55;
    __wasi_errno_t e = __wasi_sock_recv(fd, &iov, 1, flags, &n, &ro);
    printf("%s sock_recv(flags %d): errno %d n %d roflags %d data \"", what, flags, e, e ? -1 : (int)n, e ? -1 : ro);
    for (__wasi_size_t i = 0; i < n && !e; i++) printf(buf[i] == '\n' ? "\\n" : "%c", buf[i]);
    printf("\"\n");
}

static void read_(const char *what, int fd, size_t len) {
    char buf[64];
    __wasi_iovec_t iov = {.buf = (uint8_t *)buf, .buf_len = len};
    __wasi_size_t n = 0;
    __wasi_errno_t e = __wasi_fd_read(fd, &iov, 1, &n);
    printf("%s fd_read(%d): errno %d n %d\n", what, (int)len, e, e ? -1 : (int)n);
}

static void others(const char *what, int fd) {
    __wasi_filesize_t pos;
    __wasi_prestat_t pre;
    char name[8];
    uint8_t dirbuf[64];
    __wasi_size_t used;
    __wasi_fd_t opened;
    printf("%s: prestat %d prestat_dir_name %d seek %d tell %d sync %d datasync %d allocate %d advise %d "
           "set_size %d set_times %d set_rights %d readdir %d path_open %d\n",
           what, __wasi_fd_prestat_get(fd, &pre), __wasi_fd_prestat_dir_name(fd, (uint8_t *)name, sizeof name),
           __wasi_fd_seek(fd, 0, __WASI_WHENCE_CUR, &pos), __wasi_fd_tell(fd, &pos), __wasi_fd_sync(fd),
           __wasi_fd_datasync(fd), __wasi_fd_allocate(fd, 0, 1), __wasi_fd_advise(fd, 0, 1, __WASI_ADVICE_NORMAL),
           __wasi_fd_filestat_set_size(fd, 0), __wasi_fd_filestat_set_times(fd, 0, 0, __WASI_FSTFLAGS_MTIM_NOW),
           __wasi_fd_fdstat_set_rights(fd, 0, 0), __wasi_fd_readdir(fd, dirbuf, sizeof dirbuf, 0, &used),
           __wasi_path_open(fd, 0, "x", 0, 0, 0, 0, &opened));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    __wasi_fd_t c = 0;
    fdstat("listener", L);
    filestat("listener", L);
    others("listener", L);
    printf("listener sock_accept(no client): errno %d\n", __wasi_sock_accept(L, 0, &c));
    recv_("listener", L, 4, 0);
    read_("listener", L, 4);
    printf("listener sock_shutdown: errno %d\n", __wasi_sock_shutdown(L, __WASI_SDFLAGS_RD | __WASI_SDFLAGS_WR));
    __wasi_ciovec_t one = {.buf = (const uint8_t *)"x", .buf_len = 1};
    __wasi_size_t n = 0;
    printf("listener sock_send: errno %d\n", __wasi_sock_send(L, &one, 1, 0, &n));
    printf("listener fd_write: errno %d\n", __wasi_fd_write(L, &one, 1, &n));
    printf("listener set_flags(APPEND): errno %d\n", __wasi_fd_fdstat_set_flags(L, __WASI_FDFLAGS_APPEND));
    printf("listener set_flags(0): errno %d\n", __wasi_fd_fdstat_set_flags(L, 0));
    fdstat("listener (blocking)", L);
    printf("listener set_flags(NONBLOCK): errno %d\n", __wasi_fd_fdstat_set_flags(L, __WASI_FDFLAGS_NONBLOCK));
    poll1("listener (no client)", L, 0, 20);
    printf("stdout sock_accept: errno %d\n", __wasi_sock_accept(1, 0, &c));
    recv_("stdin", 0, 4, 0);
    printf("stdout sock_send: errno %d\n", __wasi_sock_send(1, &one, 1, 0, &n));
    printf("stdout sock_shutdown: errno %d\n", __wasi_sock_shutdown(1, __WASI_SDFLAGS_WR));
    printf("unused fd sock_accept: errno %d\n", __wasi_sock_accept(42, 0, &c));

    printf("waiting\n");
    poll1("listener (client)", L, 0, 20000);
    __wasi_errno_t e = __wasi_sock_accept(L, __WASI_FDFLAGS_NONBLOCK, &c);
    printf("sock_accept(NONBLOCK): errno %d fd>2 %d\n", e, c > 2);
    fdstat("conn", c);
    filestat("conn", c);
    others("conn", c);
    recv_("conn (no data yet)", c, 8, 0);
    read_("conn (no data yet)", c, 8);
    __wasi_fd_t other = 0;
    printf("conn sock_accept: errno %d\n", __wasi_sock_accept(c, 0, &other));
    printf("accepted\n");
    poll1("conn (data)", c, 0, 20000);
    recv_("conn", c, 8, __WASI_RIFLAGS_RECV_PEEK);
    recv_("conn", c, 2, 0);
    recv_("conn", c, 8, 0); // the rest: "ng\n"
    __wasi_ciovec_t two[3] = {{(const uint8_t *)"po", 2}, {(const uint8_t *)"", 0}, {(const uint8_t *)"ng\n", 3}};
    e = __wasi_sock_send(c, two, 3, 0, &n);
    printf("conn sock_send(3 buffers): errno %d n %d\n", e, (int)n);
    __wasi_ciovec_t bang[2] = {{(const uint8_t *)"!", 1}, {(const uint8_t *)"\n", 1}};
    e = __wasi_fd_write(c, bang, 2, &n);
    printf("conn fd_write(2 buffers): errno %d n %d\n", e, (int)n);
    poll1("conn (writable)", c, 1, 20000);
    printf("conn set_flags(APPEND|NONBLOCK): errno %d\n",
           __wasi_fd_fdstat_set_flags(c, __WASI_FDFLAGS_APPEND | __WASI_FDFLAGS_NONBLOCK));
    printf("conn set_flags(0): errno %d\n", __wasi_fd_fdstat_set_flags(c, 0));
    fdstat("conn (blocking)", c);
    printf("conn sock_shutdown(0): errno %d\n", __wasi_sock_shutdown(c, 0));
    printf("conn sock_shutdown(WR): errno %d\n", __wasi_sock_shutdown(c, __WASI_SDFLAGS_WR));
    // The driver reads to the end of the stream, then closes.
    recv_("conn (peer closed)", c, 8, 0);
    recv_("conn (after end)", c, 8, 0);
    poll1("conn (closed both ways)", c, 0, 20000);
    printf("conn fd_close: errno %d\n", __wasi_fd_close(c));
    printf("conn fd_close again: errno %d\n", __wasi_fd_close(c));
    printf("closed conn sock_shutdown: errno %d\n", __wasi_sock_shutdown(c, __WASI_SDFLAGS_WR));
    printf("listener sock_accept(no client): errno %d\n", __wasi_sock_accept(L, 0, &c));
    printf("done\n");
    return 0;
}
