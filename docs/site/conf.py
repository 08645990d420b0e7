# Sphinx configuration of the collection's site (`make docs`, scripts/docs.sh). It started as
# the conf.py of `antsibull-docs sphinx-init` 2.28; the changes are commented.

project = 'netmagic.netfilter'
copyright = 'netmagic.netfilter contributors'
title = 'netmagic.netfilter documentation'
html_short_title = 'netmagic.netfilter'

# myst_parser: the hand-written pages of docs/ are Markdown, read as they are on the forge.
extensions = ['sphinx_antsibull_ext', 'myst_parser']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
# Anchors for Markdown headings, so links such as engines.md#auto resolve.
myst_heading_anchors = 3

pygments_style = 'ansible'
highlight_language = 'YAML+Jinja'

html_theme = 'sphinx_ansible_theme'
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

# No intersphinx: the build runs offline. References into other collections' and
# ansible-core's docs (ansible.posix modules, core options such as ANSIBLE_PIPELINING) then have
# no target; they are rendered as plain text instead of failing the build.
intersphinx_mapping = {}
suppress_warnings = ['ref.ref', 'ref.envvar']

default_role = 'any'
nitpicky = True

# The theme's defaults link to ansible.com's blog, forum and docs in a top bar and an extra
# sidebar block; this site is the collection's own.
html_theme_options = {'topbar_links': {}, 'show_extranav': False}
