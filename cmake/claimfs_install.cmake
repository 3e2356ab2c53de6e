# Where claimfsd's system files go, and their installation. Included by the top-level
# CMakeLists.txt (to write the build tree's copy of the unit) and run again at install time by
# `cmake --install` and cpack, when CMAKE_INSTALL_PREFIX is the prefix really installed to
# (`cmake --install build --prefix DIR` changes it after configuring; cpack sets it to /usr).

# claimfs_system_paths(PREFIX BINDIR CONFIG_DIR OUT_PROGRAM OUT_CONFIG_FILE)
#   OUT_PROGRAM:     absolute path of claimfsd under PREFIX (BINDIR relative or absolute).
#   OUT_CONFIG_FILE: CONFIG_DIR/claimfsd.yaml when CONFIG_DIR is set; else /etc/claimfs/... for
#                    the system prefixes /usr and /usr/local (what claimfsd reads by default),
#                    and PREFIX/etc/claimfs/... for any other prefix, so that a trial install
#                    (`--prefix /tmp/x`) never writes to /etc.
function(claimfs_system_paths prefix bindir config_dir out_program out_config_file)
  if(IS_ABSOLUTE "${bindir}")
    set(program "${bindir}/claimfsd")
  else()
    set(program "${prefix}/${bindir}/claimfsd")
  endif()
  if(config_dir)
    set(dir "${config_dir}")
  elseif(prefix STREQUAL "/usr" OR prefix STREQUAL "/usr/local" OR prefix STREQUAL "/usr/"
         OR prefix STREQUAL "/usr/local/")
    set(dir "/etc/claimfs")
  else()
    set(dir "${prefix}/etc/claimfs")
  endif()
  set(${out_program} "${program}" PARENT_SCOPE)
  set(${out_config_file} "${dir}/claimfsd.yaml" PARENT_SCOPE)
endfunction()

# claimfs_write_unit(PROGRAM CONFIG_FILE OUTPUT): systemd/claimfsd.service.in with ExecStart set.
function(claimfs_write_unit source_dir program config_file output)
  set(CLAIMFSD_PROGRAM "${program}")
  set(CLAIMFSD_CONFIG_FILE "${config_file}")
  configure_file("${source_dir}/systemd/claimfsd.service.in" "${output}" @ONLY)
endfunction()

# At install time: CLAIMFS_INSTALL_* are set by the install(CODE) that includes this file.
if(DEFINED CLAIMFS_INSTALL_SOURCE_DIR)
  claimfs_system_paths("${CMAKE_INSTALL_PREFIX}" "${CLAIMFS_INSTALL_BINDIR}"
                       "${CLAIMFS_INSTALL_CONFIG_DIR}" program config_file)

  # The unit, generated for this prefix.
  set(unit "${CLAIMFS_INSTALL_BINARY_DIR}/systemd/install/claimfsd.service")
  claimfs_write_unit("${CLAIMFS_INSTALL_SOURCE_DIR}" "${program}" "${config_file}" "${unit}")
  if(IS_ABSOLUTE "${CLAIMFS_INSTALL_UNIT_DIR}")
    set(unit_dir "${CLAIMFS_INSTALL_UNIT_DIR}")
  else()
    set(unit_dir "${CMAKE_INSTALL_PREFIX}/${CLAIMFS_INSTALL_UNIT_DIR}")
  endif()
  file(INSTALL "${unit}" DESTINATION "${unit_dir}"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

  # The config: an administrator's edited file is never replaced. The shipped default then goes
  # next to it as claimfsd.yaml.default (as dpkg keeps a conffile and writes .dpkg-dist).
  # file(INSTALL) puts $DESTDIR in front of an absolute destination itself; EXISTS needs it.
  get_filename_component(config_dir "${config_file}" DIRECTORY)
  set(shipped "${CLAIMFS_INSTALL_SOURCE_DIR}/config/claimfsd.yaml")
  set(keep FALSE)
  if(EXISTS "$ENV{DESTDIR}${config_file}")
    file(READ "$ENV{DESTDIR}${config_file}" current)
    file(READ "${shipped}" default)
    if(NOT current STREQUAL default)
      set(keep TRUE)
    endif()
  endif()
  if(keep)
    message(STATUS "Keeping the edited $ENV{DESTDIR}${config_file}; "
                   "the shipped default is installed as claimfsd.yaml.default")
    file(INSTALL "${shipped}" DESTINATION "${config_dir}" RENAME claimfsd.yaml.default
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  else()
    file(INSTALL "${shipped}" DESTINATION "${config_dir}"
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
endif()
