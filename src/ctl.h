/*
 * ctl.h - `bollard ctl`: the command-line client of the runtime API.
 */
#ifndef BOLLARD_CTL_H
#define BOLLARD_CTL_H

/*
 * `bollard ctl [-s SOCKET | -c FILE] COMMAND...`; argv[0] is the first
 * argument after "ctl". Prints the answer (without its terminating empty
 * line) on stdout. Returns the process exit status: 0, or 1 when the answer
 * is an error or the socket cannot be reached (message on stderr), 2 on a
 * usage error.
 */
int ctl_main(int argc, char **argv);

#endif
