# Run the sluice tool to print one of the documents it is the source of
# (the man page, the bash completion) into a file, at build time:
#   cmake -DTOOL=path/to/sluice -DARGS="--man" -DOUT=sluice.1 -P gen_doc.cmake
# The file is replaced only when the tool succeeded.
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND "${TOOL}" ${args}
                OUTPUT_FILE "${OUT}.tmp"
                RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  file(REMOVE "${OUT}.tmp")
  message(FATAL_ERROR "${TOOL} ${ARGS} failed: ${status}")
endif()
file(RENAME "${OUT}.tmp" "${OUT}")
