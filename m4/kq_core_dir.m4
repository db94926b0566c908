# KQ_CORE_DIR_SAFE_RM
# -------------------
# This tree has a source folder named `core`.  Autoconf's generated code
# removes core dumps with `rm -f core ...` after each test program and in
# its exit trap; on a folder that prints an error and, in the trap, stops
# the cleanup before confdefs.h is removed.  This defines a shell function
# `rm` for the rest of configure that drops a plain `core` argument when it
# names a directory, then runs the real rm.  Everything else is untouched.
AC_DEFUN([KQ_CORE_DIR_SAFE_RM],
[m4_divert_text([INIT_PREPARE], [dnl
rm ()
{
  for kq_rm_arg
  do
    shift
    if test "x$kq_rm_arg" = xcore && test -d core; then continue; fi
    set -- "$[@]" "$kq_rm_arg"
  done
  command rm "$[@]"
}
])])
