"""Small pieces shared by the whole package: whole-file writes and CSV (:mod:`.atomic`), the
output-folder policy and lock every tool writes through (:mod:`.folders`), hashes
of files (:mod:`.checksums`) and tensors (:mod:`.tensors`), checks of user numbers
(:mod:`.validation`), what produced a result (:mod:`.provenance`), old run folders' keys
read under today's names (:mod:`.deprecation`), lazy package re-exports (:mod:`.lazy`), reading a JSON file
that may be damaged or hostile (:mod:`.json_files`) and names from data put into HTML or
Markdown as text (:mod:`.markup`), and the device a user asks for, checked in one line
(:mod:`.devices`)."""
