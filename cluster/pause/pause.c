/*
 * Minimal pod sandbox "pause" process: holds the pod's namespaces open, reaps
 * zombies (it is PID 1 of the pod when the PID namespace is shared) and exits
 * promptly on SIGINT/SIGTERM. Built statically so the image needs no libc.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

static int handle(int sig, void (*fn)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fn;
    sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("flux-e2e pause");
        return 0;
    }
    if (getpid() != 1) {
        fputs("warning: pause should be PID 1\n", stderr);
    }
    if (handle(SIGINT, on_stop) || handle(SIGTERM, on_stop) || handle(SIGCHLD, on_child)) {
        perror("sigaction");
        return 1;
    }
    for (;;) {
        pause();
    }
}
