/* Trap catching for the wanco runtime.
 *
 * A trap raised by compiled code (a call to wanco_trap, or a fault in the
 * linear-memory guard region turned into a trap by the signal handler)
 * unwinds to the innermost wanco_catch with siglongjmp. The frames skipped are
 * compiled Wasm frames and runtime helper frames that own no resources. */
#include <setjmp.h>
#include <stddef.h>

static __thread sigjmp_buf *current_catch;

/* Run f(arg). Returns -1 if it returned normally, otherwise the trap code. */
int wanco_catch(void (*f)(void *), void *arg) {
    sigjmp_buf buf;
    sigjmp_buf *prev = current_catch;
    int code;
    current_catch = &buf;
    code = sigsetjmp(buf, 1);
    if (code == 0) {
        f(arg);
        current_catch = prev;
        return -1;
    }
    current_catch = prev;
    return code - 1;
}

/* Nonzero if a wanco_catch is active on this thread. */
int wanco_catch_active(void) { return current_catch != NULL; }

/* Unwind to the innermost wanco_catch with `code`. Only call if active. */
void wanco_unwind(int code) { siglongjmp(*current_catch, code + 1); }
