# Passed to pip's build of llama-cpp-python (Makefile: CMAKE_ARGS=-DCMAKE_PROJECT_llama_cpp_INCLUDE=<this file>):
# build only what its Python bindings load (libllama and libggml*), for a faster `make report`.
#
# llama-cpp-python forces llama.cpp's "common" library on (chat templates, argument parsing, an HTTP client)
# and installs it, but the bindings never load it, and neither does llmperf-nb. At the end of its
# CMakeLists (cmake_language DEFER), the library keeps its name and install rule but is built from one
# empty source, without the HTTP library it links. The multimodal library (mtmd) is left out by the
# Makefile's -DLLAVA_BUILD=OFF, llama-cpp-python's own switch: llama_cpp loads it only for image chat.
function(llmperf_nb_bindings_only)
    if(NOT TARGET llama-common)
        return()
    endif()
    set(stub "${CMAKE_BINARY_DIR}/llmperf-nb-empty-common.cpp")
    file(WRITE "${stub}" "// llama-common is not used by the Python bindings: see scripts/llama-cpp-bindings.cmake\n")
    set_property(TARGET llama-common PROPERTY SOURCES "${stub}")
    set_property(TARGET llama-common PROPERTY LINK_LIBRARIES "")
    set_property(TARGET llama-common PROPERTY INTERFACE_LINK_LIBRARIES "")
    # static helpers nothing installed needs any more: built only if something still links them
    foreach(helper cpp-httplib vendor-hash)
        if(TARGET ${helper})
            set_property(TARGET ${helper} PROPERTY EXCLUDE_FROM_ALL TRUE)
        endif()
    endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL llmperf_nb_bindings_only)
